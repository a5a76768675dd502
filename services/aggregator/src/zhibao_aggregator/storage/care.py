"""Writing and reading the key-person register and the needs' persons.

The writer runs inside the events batch's transaction (after its dedup check: each
event here is new); the readers answer the register and the rollups' counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import care
from zhibao_aggregator.storage.care_tables import key_person_totals, key_persons, need_tasks
from zhibao_aggregator.storage.facts import CHUNK
from zhibao_aggregator.storage.task_tables import task_spans
from zhibao_shared.bulk import Insert, adding, insert_many
from zhibao_shared.care_events import PublishedKeyPerson, PublishedNeed
from zhibao_shared.events import PublishedEvent

k = key_persons.c
t = key_person_totals.c


async def apply_care(conn: AsyncConnection, events: Sequence[PublishedEvent]) -> None:
    """The batch's key-person actions, needs and contacts (in that order: a person
    registered in the batch gets the batch's contacts)."""
    actions = [care.registration(e) for e in events if isinstance(e, PublishedKeyPerson)]
    changes: Counter[tuple[str, str]] = Counter()
    for action in sorted(actions, key=lambda a: a.order):
        changes[(action.community, action.category)] += await _apply_registration(conn, action)
    await _add_to_totals(conn, care.totals_change(changes))
    needs = [e for e in events if isinstance(e, PublishedNeed)]
    if needs:
        await conn.execute(insert(need_tasks), [_need_row(e) for e in needs])
    contacted = care.contacts(events)
    registered = await _registered_among(conn, list(contacted)) if contacted else set()
    for pid in sorted(registered):  # few: the hot path pays one indexed lookup per batch
        at = contacted[pid]
        await conn.execute(
            update(key_persons)
            .where(k.pid == pid, k.registered.is_(True))
            .where((k.last_contact.is_(None)) | (k.last_contact < at))
            .values(last_contact=at)
        )


async def _registered_among(conn: AsyncConnection, pids: list[str]) -> set[str]:
    """Those of ``pids`` on a register."""
    found: set[str] = set()
    for start in range(0, len(pids), CHUNK):
        query = select(k.pid).where(k.pid.in_(pids[start : start + CHUNK]), k.registered.is_(True))
        found.update((await conn.execute(query)).scalars())
    return found


async def _apply_registration(conn: AsyncConnection, action: care.Registration) -> int:
    """Apply one action to its register row; returns the change of the registered
    persons it makes (+1, -1 or 0)."""
    where = and_(
        k.community == action.community, k.pid == action.pid, k.category == action.category
    )
    found = (await conn.execute(select(key_persons).where(where))).first()
    if found is not None and (found.changed_at, found.changed_key) >= action.order:
        return 0  # a later action decided the row already
    since = None
    if action.registered:  # a registration renewed keeps its start
        since = found.since if found is not None and found.registered else action.at
    values: dict[str, Any] = {
        "registered": action.registered,
        **action.places,
        "since": since,
        "changed_at": action.at,
        "changed_key": action.key,
    }
    if found is None:
        keys = {"community": action.community, "pid": action.pid, "category": action.category}
        await conn.execute(insert(key_persons).values(**keys, **values))
    else:
        if not action.registered:
            values = {n: v for n, v in values.items() if n not in care.PLACE_FIELDS}
        await conn.execute(update(key_persons).where(where).values(**values))
    was_registered = found is not None and bool(found.registered)
    return care.registered_change(was_registered, action.registered)


async def _add_to_totals(conn: AsyncConnection, change: Counter[tuple[str, str]]) -> None:
    """Add the register's changes to the units' totals (upserts that add: instances
    sharing a database never read-modify-write a total)."""
    rows = [(unit, category, delta) for (unit, category), delta in change.items()]
    if conn.dialect.name == "postgresql":
        rows.sort()  # a fixed order keeps row locks ordered (no deadlocks between instances)
    await insert_many(conn, _TOTALS, rows)


_TOTALS = Insert(key_person_totals.name, ("unit", "category", "value"), adding(key_person_totals))


def _need_row(event: PublishedNeed) -> dict[str, Any]:
    return {
        "task": event.task_id,
        "community": event.subject,
        "pid": event.data.person.pid,
        "category": event.data.category.value,
        "urgency": event.data.urgency.value,
        "raised_at": event.time,
    }


#: Built once: building a statement costs more than running this one on a small register.
_READ_TOTALS = select(t.unit, t.category, t.value).where(
    t.unit.in_(bindparam("units", expanding=True))
)


async def key_person_counts(conn: AsyncConnection, codes: list[str]) -> dict[str, dict[str, int]]:
    """The current register's persons per category under each unit of ``codes`` (their
    totals: one lookup by key per unit, whatever the size of the register)."""
    units = sorted(set(codes))
    rows: list[tuple[str, str, int]] = []
    for start in range(0, len(units), CHUNK):
        found = await conn.execute(_READ_TOTALS, {"units": units[start : start + CHUNK]})
        rows += [(unit, category, int(value)) for unit, category, value in found.all()]
    return care.counts_of(rows, codes)


@dataclass(frozen=True)
class KeyPerson:
    """One row of a community's register as its own tokens see it."""

    pid: str
    category: str
    compound_id: str | None
    building_id: str | None
    grid_id: str | None
    compound: str | None
    building: str | None
    grid: str | None
    since: datetime | None
    last_contact: datetime | None
    open_needs: int

    def as_json(self) -> dict[str, Any]:
        """The row as the API shows it."""
        out = asdict(self)
        for name in ("since", "last_contact"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


async def register(conn: AsyncConnection, community: str) -> list[KeyPerson]:
    """The community's current register, with each person's open needs (tasks of their
    needs that are not closed, wherever they were transferred)."""
    open_span = exists().where(
        task_spans.c.task == need_tasks.c.task, task_spans.c.closed_at.is_(None)
    )
    needs = await conn.execute(
        select(need_tasks.c.pid, func.count())
        .where(need_tasks.c.community == community, open_span)
        .group_by(need_tasks.c.pid)
    )
    open_needs = {pid: int(n) for pid, n in needs.all()}
    rows = await conn.execute(
        select(key_persons)
        .where(k.community == community, k.registered.is_(True))
        .order_by(k.category, k.since, k.pid)
    )
    return [
        KeyPerson(
            r.pid,
            r.category,
            r.compound_id,
            r.building_id,
            r.grid_id,
            r.compound,
            r.building,
            r.grid,
            r.since,
            r.last_contact,
            open_needs.get(r.pid, 0),
        )
        for r in rows.all()
    ]
