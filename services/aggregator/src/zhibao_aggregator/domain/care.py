"""The key-person register and needs, as the rollups and the register count them (pure).

* The register holds, per community, person (pseudonym) and category, what the
  person's latest ``zhibao.keyperson.v1`` of that category said: registered (with its
  place) or removed. Actions apply in the order of their (``time``, identity), so a
  late older action changes nothing.
* A person's **last contact** is their latest screening, isolation check or task
  result (about the task's person) seen since they were on the register.
* Rollups carry ``key_persons`` ({category: count} of the current register) at every
  level, kept as running totals per unit and category (a row's change of registered
  state adds +1 or -1 at its community and every unit above); only the community's
  own tokens see the register's rows.
* Needs are tasks (kind ``need_<category>``): ``needs_open``, ``needs_overdue`` and
  ``needs_median_hours`` are the task figures of those kinds
  (:mod:`zhibao_aggregator.domain.tasks`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from zhibao_shared.care_events import KeyPersonAction, PublishedKeyPerson
from zhibao_shared.events import (
    IsolationAction,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
    PublishedTaskResult,
)
from zhibao_shared.hierarchy import ancestors

KEY_PERSONS = "key_persons"
Order = tuple[datetime, str]


@dataclass(frozen=True)
class Registration:
    """One key-person action, as the register stores it."""

    community: str
    pid: str
    category: str
    registered: bool
    places: dict[str, str | None]
    at: datetime
    key: str

    @property
    def order(self) -> Order:
        """Actions on one row apply in this order; the last decides."""
        return (self.at, self.key)


#: The place fields a registration keeps (registered ids, labels as reported).
PLACE_FIELDS = ("compound_id", "building_id", "grid_id", "compound", "building", "grid")


def registration(event: PublishedKeyPerson) -> Registration:
    """The register row ``event`` asks for."""
    data = event.data
    return Registration(
        community=event.subject,
        pid=data.person.pid,
        category=data.category.value,
        registered=data.action is KeyPersonAction.REGISTER,
        places={name: getattr(data, name) for name in PLACE_FIELDS},
        at=event.time,
        key=event.dedup_key,
    )


def contacts(events: Iterable[PublishedEvent]) -> dict[str, datetime]:
    """Each person's latest contact among ``events``: a screening naming them, an
    isolation check, a task result about them."""
    latest: dict[str, datetime] = {}
    for event in events:
        pid = _contacted(event)
        if pid is not None and (pid not in latest or latest[pid] < event.time):
            latest[pid] = event.time
    return latest


def _contacted(event: PublishedEvent) -> str | None:
    if isinstance(event, PublishedScreening | PublishedTaskResult):
        person = event.data.person
        return person.pid if person is not None else None
    if isinstance(event, PublishedIsolation) and event.data.action is IsolationAction.CHECK:
        return event.data.person.pid
    return None


def may_see_register(scopes: Sequence[str], community: str) -> bool:
    """The community's own tokens (a scope that is the community or lies inside it) see
    its register; a street's or district's token sees the counts only."""
    return any(scope.startswith(community) for scope in scopes)


def registered_change(before: bool, after: bool) -> int:
    """What a row's new state adds to its units' registered persons: +1 from absent or
    removed (``before`` False) to registered, -1 from registered to removed, else 0 (a
    renewal, or a removal of a row not registered)."""
    return int(after) - int(before)


def totals_change(changes: Mapping[tuple[str, str], int]) -> Counter[tuple[str, str]]:
    """``{(unit, category): delta}`` at every level from ``{(community, category): delta}``
    (codes nest by prefix); zero changes are dropped."""
    out: Counter[tuple[str, str]] = Counter()
    for (community, category), delta in changes.items():
        if delta:
            for unit in ancestors(community):
                out[(unit, category)] += delta
    return Counter({key: value for key, value in out.items() if value != 0})


def counts_of(
    rows: Iterable[tuple[str, str, int]], codes: Iterable[str]
) -> dict[str, dict[str, int]]:
    """``{code: {category: persons}}`` from (unit, category, persons) totals, categories
    sorted and those with no person left out."""
    found: dict[str, dict[str, int]] = {code: {} for code in codes}
    for unit, category, persons in rows:
        if persons and unit in found:
            found[unit][category] = persons
    return {code: dict(sorted(sums.items())) for code, sums in found.items()}
