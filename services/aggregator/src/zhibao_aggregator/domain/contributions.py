"""What events contribute to the counters: pure functions of facts.

Events about a person (cases, isolation) are order-sensitive and may arrive
late or out of order. Their contribution is therefore a function of the
person's whole history sorted by event time: applying a new fact means
``contributions(history + new) - contributions(history)``. The result is the
same whatever the arrival order, and a person is never counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_shared.events import (
    Classification,
    IsolationAction,
)
from zhibao_shared.hierarchy import ancestors

#: (community code, day, metric) → change.
Contribution = Counter[tuple[str, date, str]]


@dataclass(frozen=True, order=True)
class CaseFact:
    """One case classification of a person (sorted by time, then dedup key)."""

    time: datetime
    key: str
    community: str
    classification: Classification


@dataclass(frozen=True, order=True)
class IsolationFact:
    """One isolation action about a person (``kind`` and ``until``: as the event gave them)."""

    time: datetime
    key: str
    community: str
    action: IsolationAction
    kind: str = "home"
    until: date | None = None


@dataclass(frozen=True, order=True)
class ReportFact:
    """One daily report of a community for a date."""

    received_at: datetime
    key: str
    zero: bool


def case_history(facts: Iterable[CaseFact], calendar: Calendar) -> Contribution:
    """Counters of one person's classification history.

    * ``new_<class>``: +1 on the day the person first got that class.
    * ``current_<class>`` (stock): the person is counted under their latest
      class, in the community of their latest report; moving class or
      community moves the one person.
    """
    out: Contribution = Counter()
    seen: set[Classification] = set()
    held: tuple[str, Classification] | None = None
    for fact in sorted(facts):
        day = calendar.day(fact.time)
        if fact.classification not in seen:
            seen.add(fact.classification)
            out[(fact.community, day, m.new_metric(fact.classification))] += 1
        now = (fact.community, fact.classification)
        if now == held:
            continue
        if held is not None and held[1] in m.CURRENT_CLASSES:
            out[(held[0], day, m.current_metric(held[1]))] -= 1
        if fact.classification in m.CURRENT_CLASSES:
            out[(fact.community, day, m.current_metric(fact.classification))] += 1
        held = now
    return out


def isolation_history(facts: Iterable[IsolationFact], calendar: Calendar) -> Contribution:
    """Counters of one person's isolation history.

    A start opens an isolation (a second start while open is ignored), an end
    closes it; ``in_isolation`` is the stock of open isolations, counted in
    the community of the start. ``isolation_checked_due`` counts a person
    once per day when checked on a day after their isolation started, so
    ``in isolation at the start of the day - checked_due`` = checks missed.
    The planned end of each isolation (its ``until``) gives
    :func:`isolation_ends`' counters.
    """
    out: Contribution = Counter()
    open_at: tuple[str, date] | None = None
    checked_days: set[date] = set()
    ordered = sorted(facts)
    for fact in ordered:
        day = calendar.day(fact.time)
        where = fact.community
        if fact.action is IsolationAction.START and open_at is None:
            open_at = (where, day)
            out[(where, day, m.ISOLATION_STARTED)] += 1
            out[(where, day, m.IN_ISOLATION)] += 1
        elif fact.action is IsolationAction.END and open_at is not None:
            out[(where, day, m.ISOLATION_ENDED)] += 1
            out[(open_at[0], day, m.IN_ISOLATION)] -= 1
            open_at = None
        elif fact.action is IsolationAction.CHECK:
            out[(where, day, m.ISOLATION_CHECKS)] += 1
            if open_at is not None and open_at[1] < day and day not in checked_days:
                checked_days.add(day)
                out[(open_at[0], day, m.ISOLATION_CHECKED_DUE)] += 1
        elif fact.action is IsolationAction.BREACH:
            out[(where, day, m.ISOLATION_BREACHES)] += 1
    out.update(isolation_ends(ordered, calendar))
    return out


@dataclass(frozen=True)
class Episode:
    """One isolation from its start to its end (None: still open)."""

    community: str
    kind: str
    start: date
    until: date | None
    end: date | None


def episodes(facts: Iterable[IsolationFact], calendar: Calendar) -> list[Episode]:
    """A person's isolations; the planned end is the last ``until`` given while open."""
    out: list[Episode] = []
    current: Episode | None = None
    for fact in sorted(facts):
        day = calendar.day(fact.time)
        if current is None:
            if fact.action is IsolationAction.START:
                current = Episode(fact.community, fact.kind, day, fact.until, None)
            continue
        if fact.action is IsolationAction.END:
            out.append(Episode(current.community, current.kind, current.start, current.until, day))
            current = None
        elif fact.until is not None:
            current = Episode(current.community, current.kind, current.start, fact.until, None)
    if current is not None:
        out.append(current)
    return out


def isolation_ends(facts: Iterable[IsolationFact], calendar: Calendar) -> Contribution:
    """Planned ends of a person's isolations (without ``until``, an isolation has none).

    * ``isolation_release_due_<kind>`` on day U: the person is still in isolation
      (no end event) and planned to be released on U (a snapshot of now, not a flow).
    * ``isolations_overdue`` (stock): in isolation at the end of a day after U, from
      the day after U (or the start, if later) until the end event's day.
    """
    out: Contribution = Counter()
    for episode in episodes(facts, calendar):
        if episode.until is None:
            continue
        where = episode.community
        if episode.end is None:
            out[(where, episode.until, m.release_due_metric(episode.kind))] += 1
        overdue_from = max(episode.start, episode.until + timedelta(days=1))
        if episode.end is None:
            out[(where, overdue_from, m.ISOLATIONS_OVERDUE)] += 1
        elif episode.end > overdue_from:
            out[(where, overdue_from, m.ISOLATIONS_OVERDUE)] += 1
            out[(where, episode.end, m.ISOLATIONS_OVERDUE)] -= 1
    return out


def daily_report(
    community: str,
    day: date,
    facts: Iterable[ReportFact],
    calendar: Calendar,
    due_after: timedelta,
) -> Contribution:
    """A community has reported for ``day`` once; its first report decides on-time/late."""
    ordered = sorted(facts)
    if not ordered:
        return Counter()
    first = ordered[0]
    on_time = calendar.report_on_time(day, first.received_at, due_after)
    out: Contribution = Counter({(community, day, m.REPORTS_RECEIVED): 1})
    out[(community, day, m.REPORTS_ON_TIME if on_time else m.REPORTS_LATE)] += 1
    if first.zero:
        out[(community, day, m.REPORTS_ZERO)] += 1
    return out


@cache
def units_of(community: str) -> tuple[str, ...]:
    """The community and every unit above it up to the province (codes nest by prefix;
    remembered: a batch asks for the same few thousand communities again and again)."""
    return ancestors(community)


@cache
def parent_of(unit: str) -> str | None:
    """The unit directly above ``unit`` (None at the top; remembered as :func:`units_of`)."""
    chain = units_of(unit)
    return chain[1] if len(chain) > 1 else None


def roll_up(contribution: Contribution) -> Counter[tuple[str, date, str]]:
    """Spread community-level changes to every level; zero changes are dropped.

    One level at a time: each level's changes are summed into its parents' before going
    up, so a batch's thousands of community changes make only a few hundred at the
    street and a few at the city. (Plain dicts inside: a Counter's ``+=`` on a new key
    calls ``__missing__`` in Python, and a rebuild rolls up a million keys.)"""
    level = {key: delta for key, delta in contribution.items() if delta}
    out = dict(level)
    while level:
        up: dict[tuple[str, date, str], int] = {}
        for (unit, day, metric), delta in level.items():
            parent = parent_of(unit)
            if parent is not None:
                above = (parent, day, metric)
                up[above] = up.get(above, 0) + delta
        level = {key: delta for key, delta in up.items() if delta}
        for key, delta in level.items():
            out[key] = out.get(key, 0) + delta
    return Counter({key: value for key, value in out.items() if value != 0})


def difference(new: Contribution, old: Contribution) -> Contribution:
    """``new - old`` keeping negative values (Counter subtraction would drop them)."""
    out: Contribution = Counter(new)
    for key, value in old.items():
        out[key] -= value
    return out
