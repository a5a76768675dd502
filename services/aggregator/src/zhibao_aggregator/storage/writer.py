"""Applying a batch of events in one transaction, idempotently.

The dedup keys of applied events are written in the same transaction as the
counter changes they cause, so a redelivered event is recognised and skipped:
whatever is redelivered, nothing is counted twice; whatever crashes, nothing
committed is lost (JetStream redelivers what was not acked).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import zip_longest
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import contributions as c
from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import place_figures as pf
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.corrections import Footprint, footprint
from zhibao_aggregator.storage.care import apply_care
from zhibao_aggregator.storage.corrections import (
    CORRECTION_EFFECT,
    apply_corrections,
    correction_lock,
)
from zhibao_aggregator.storage.facts import (
    CHUNK,
    case_fact,
    case_row,
    histories,
    isolation_fact,
    isolation_row,
    report_facts,
    report_row,
)
from zhibao_aggregator.storage.facts import as_utc as as_utc
from zhibao_aggregator.storage.place_counters import add_place_counters, case_places, place_rows
from zhibao_aggregator.storage.tables import (
    applied_events,
    case_facts,
    counter_totals,
    counters,
    daily_reports,
    isolation_facts,
)
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.bulk import Insert, adding, day_binder, insert_many
from zhibao_shared.care_events import PublishedKeyPerson
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import (
    CORRECTABLE_TYPES,
    IsolationAction,
    IsolationKind,
    PublishedCase,
    PublishedCorrection,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedTaskResult,
)


@dataclass(frozen=True)
class Rules:
    """The domain parameters the writer applies."""

    calendar: Calendar
    fever_c: float = 37.3
    report_due_after: timedelta = timedelta(days=1, hours=9)
    #: The statutory limit from a case's classification (``time``) to its receipt.
    case_report_limit: timedelta = timedelta(hours=2)


@dataclass(frozen=True)
class Applied:
    """What one batch changed."""

    applied: int
    duplicates: int
    changed: frozenset[tuple[str, date]]
    by_type: dict[str, int]


#: Held keys written at a time (see :meth:`HeldCounters.write`).
WRITE_RUN = 100_000


class HeldCounters:
    """Counter changes kept in memory across batches and written together.

    For a rebuild: nobody reads the counters until it is done, and a (unit, day,
    metric) that many batches change is written once instead of once per batch (at
    every level, so the roll-up runs once too). Each of a rebuild's processes holds its
    own. At most ``limit`` community and place keys are held; reaching it writes them in
    the transaction of the batch that did. A held key shares its unit (or place) and
    day with every other key of them: each event's own copies would double the memory a
    key takes.

    Held changes follow the transactions (:meth:`settle`): a batch's changes are held
    once its transaction committed, so a batch that failed and comes back is not held
    twice, and what a failed write in a batch's transaction was writing stays held for
    the next. The rebuild's last write (``ApplyBatch.write_held``: a transaction a run,
    then :meth:`forget`) is not retried: a failure there leaves the rebuild unfinished.
    """

    def __init__(self, limit: int, run: int = WRITE_RUN) -> None:
        self._limit = limit
        self._run = run
        self._units: c.Contribution = Counter()
        self._places: c.Contribution = Counter()
        self._shared: dict[Any, Any] = {}
        #: The open transaction's batch changes (units, places), held once it commits.
        self._staged: list[tuple[c.Contribution, c.Contribution]] = []
        self._merged = False  # the staged changes were added to the held ones (to write)
        self._written = False  # everything held was written in the open transaction

    def hold(self, units: c.Contribution, places: c.Contribution) -> None:
        """Add a batch's community-level and place changes (in its transaction)."""
        self._staged.append((units, places))

    @property
    def full(self) -> bool:
        """Whether the held keys reached the limit (write them now)."""
        staged = sum(len(units) + len(places) for units, places in self._staged)
        return len(self._units) + len(self._places) + staged >= self._limit

    async def write(self, conn: AsyncConnection) -> None:
        """Write everything held, in the caller's transaction (held no more once it
        commits: :meth:`settle`)."""
        for rows in self.rows(day_binder(conn)):
            await add_rows(conn, rows)
        self._written = True

    def rows(self, bind: Callable[[date], Any]) -> Iterator[CounterRows]:
        """Everything held as rows to add, a run at a time.

        In runs of whole units (and places) of about ``run`` keys each (by default
        :data:`WRITE_RUN`), in unit order: rolling up and the rows of one run are all
        that is built at a time, and a run's streets and districts meet the next run's
        in the database, where changes add up."""
        self._merge()
        units, places = _runs(self._units, self._run), _runs(self._places, self._run)
        nothing: c.Contribution = Counter()
        for run_units, run_places in zip_longest(units, places, fillvalue=nothing):
            yield counter_rows(c.roll_up(run_units), run_places, bind)

    def forget(self) -> None:
        """Hold nothing any more (the caller wrote every run of :meth:`rows`)."""
        self._units, self._places, self._shared = Counter(), Counter(), {}
        self._staged, self._merged, self._written = [], False, False

    def settle(self, committed: bool) -> None:
        """After the transaction of a batch or of :meth:`write`: committed, the batch's
        changes are held (or, written, nothing is held any more); rolled back, they are
        dropped and what was held before stays."""
        if committed and self._written:
            self._units, self._places, self._shared = Counter(), Counter(), {}
        elif committed:
            self._merge()
        elif self._merged:
            for units, places in self._staged:
                self._add(self._units, units, sign=-1)
                self._add(self._places, places, sign=-1)
        self._staged, self._merged, self._written = [], False, False

    def _merge(self) -> None:
        if not self._merged:
            for units, places in self._staged:
                self._add(self._units, units)
                self._add(self._places, places)
            self._merged = True

    def _add(self, held: c.Contribution, change: c.Contribution, sign: int = 1) -> None:
        shared = self._shared
        for key, delta in change.items():
            before = held.get(key)
            if before is not None:
                held[key] = before + sign * delta
            else:
                where, day, metric = key
                shared_key = (shared.setdefault(where, where), shared.setdefault(day, day), metric)
                held[shared_key] = sign * delta


def _runs(held: c.Contribution, size: int) -> Iterator[c.Contribution]:
    """``held`` in runs of whole units (or places), about ``size`` keys each, in unit
    order, one built at a time (grouped, not sorted key by key: a million keys sort in
    seconds); ``held`` itself is left as it is."""
    by_unit: dict[str, list[tuple[str, date, str]]] = defaultdict(list)
    for key in held:
        by_unit[key[0]].append(key)
    run: c.Contribution = Counter()
    for unit in sorted(by_unit):
        for key in by_unit.pop(unit):
            run[key] = held[key]
        if len(run) >= size:
            yield run
            run = Counter()
    if run:
        yield run


class Prepared(NamedTuple):
    """What a delivery needs that reads nothing stored (:func:`prepare`)."""

    key: str
    #: What the event counts by itself (None: a correction).
    mark: Footprint | None
    #: ``mark`` as stored with the dedup key.
    effect: str


def prepare(batch: Sequence[Delivery], rules: Rules) -> list[Prepared]:
    """Each delivery's dedup key, footprint and stored footprint: pure work, done before
    the batch's transaction so that the transaction (and on SQLite the write lock,
    which a rebuild's processes take in turn) holds only what needs the database."""
    out: list[Prepared] = []
    for delivery in batch:
        event = delivery.event
        if isinstance(event, PublishedCorrection):
            out.append(Prepared(event.dedup_key, None, CORRECTION_EFFECT))
            continue
        mark = footprint(event, rules.calendar, rules.fever_c, rules.case_report_limit)
        out.append(Prepared(event.dedup_key, mark, mark.encode()))
    return out


async def apply_batch(
    conn: AsyncConnection,
    batch: Sequence[Delivery],
    rules: Rules,
    held: HeldCounters | None = None,
    prepared: Sequence[Prepared] | None = None,
) -> Applied:
    """Apply the not-yet-applied events of a batch; the caller owns the transaction.

    Several aggregators may write one database at once (two instances during a rolling
    update, district partitions sharing one PostgreSQL, a rebuild's processes): each
    first locks the persons and community-days its batch touches, so a person's history
    is read and extended by one transaction at a time, and an event another instance
    applied meanwhile is seen. Each event's footprint (what it counts by itself) is
    stored with its dedup key, so a correction can take back exactly that; corrections
    are applied after the events. ``prepared`` is :func:`prepare` of the batch, when the
    caller did it before the transaction. With ``held`` (a rebuild), the counter changes
    are held there instead of written, and nothing is reported changed.
    """
    if conn.dialect.name == "postgresql":  # advisory locks (lock_names does nothing elsewhere)
        await lock_names(conn, _lock_names(batch))
    fresh = await _fresh(conn, batch, prepared or prepare(batch, rules))
    events = [d.event for d, _ in fresh]
    originals = [(d.event, p.mark) for d, p in fresh if p.mark is not None]
    fixes = [e for e in events if isinstance(e, PublishedCorrection)]
    change: c.Contribution = Counter()  # at communities only: the events' own metrics
    marked: c.Contribution = Counter()  # the rest, with place keys (split off below)
    for event, mark in originals:
        for metric in mark.metrics:
            change[(event.subject, mark.day, metric)] += 1
        if mark.places:
            marked.update(pf.placed(event.subject, mark.day, mark.metrics, mark.places))
    marked.update(await _cases(conn, [e for e in events if isinstance(e, PublishedCase)], rules))
    isolations = [e for e in events if _about_isolation(e)]
    marked.update(await _isolations(conn, isolations, rules))
    reports = [e for e in events if isinstance(e, PublishedDailyReport)]
    marked.update(await _reports(conn, reports, rules))
    await apply_care(conn, [event for event, _ in originals])
    if fresh:
        applied = sorted((p.key, d.stream_sequence, p.effect) for d, p in fresh)
        await insert_many(conn, _APPLIED, applied)
    # every new event: a correction held for one that is not correctable is ignored now
    marked.update(await apply_corrections(conn, fixes, [p.key for _, p in fresh], rules))
    at_communities, at_places = pf.split(marked)
    change.update(at_communities)
    changed: frozenset[tuple[str, date]] = frozenset()
    if held is None:
        changed = await _write_counters(conn, change, at_places)
    else:
        held.hold(change, at_places)
        if held.full:
            await held.write(conn)
    by_type = dict(Counter(e.type.short for e in events))
    return Applied(len(fresh), len(batch) - len(fresh), changed, by_type)


def _lock_names(batch: Sequence[Delivery]) -> set[str]:
    names: set[str] = set()
    for delivery in batch:
        event = delivery.event
        if event.type in CORRECTABLE_TYPES or isinstance(event, PublishedCorrection):
            # An event and its correction meet under this name: one holds the correction
            # or applies it, never both miss each other.
            names.add(correction_lock(event.subject))
        if isinstance(event, _PersonEvent) and (
            isinstance(event, PublishedCase) or _about_isolation(event)
        ):
            names.add(f"person {_pid(event)}")
        elif isinstance(event, PublishedDailyReport):
            names.add(f"report {event.subject} {event.data.date.isoformat()}")
        elif isinstance(event, PublishedKeyPerson):  # a register row, read then written
            names.add(f"person {event.data.person.pid}")
    return names


_KNOWN_KEYS = select(applied_events.c.dedup_key).where(
    applied_events.c.dedup_key.in_(bindparam("keys", expanding=True))
)


async def _fresh(
    conn: AsyncConnection, batch: Sequence[Delivery], prepared: Sequence[Prepared]
) -> list[tuple[Delivery, Prepared]]:
    """The deliveries not applied yet (the first of repeats), each with its preparation."""
    keys = list({p.key for p in prepared})
    known: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        rows = await conn.execute(_KNOWN_KEYS, {"keys": keys[start : start + CHUNK]})
        known.update(rows.scalars())
    fresh: list[tuple[Delivery, Prepared]] = []
    for delivery, ready in zip(batch, prepared, strict=True):
        if ready.key not in known:
            known.add(ready.key)
            fresh.append((delivery, ready))
    return fresh


_PersonEvent = PublishedCase | PublishedIsolation | PublishedTaskResult


def _about_isolation(event: PublishedEvent) -> bool:
    """An isolation event, or a task result starting an isolation of the task's person
    (counted exactly like a start reported directly)."""
    if isinstance(event, PublishedTaskResult):
        return event.data.person is not None and event.data.isolation is not None
    return isinstance(event, PublishedIsolation)


def _pid(event: _PersonEvent) -> str:
    person = event.data.person
    assert person is not None
    return person.pid


def _isolation_fact(event: PublishedIsolation | PublishedTaskResult) -> c.IsolationFact:
    """An isolation event as a fact; a task result's isolation measure is a start."""
    if isinstance(event, PublishedTaskResult):
        kind = event.data.isolation or IsolationKind.HOME
        start = IsolationAction.START
        return c.IsolationFact(
            event.time, event.dedup_key, event.subject, start, kind.value, event.data.until
        )
    data = event.data
    return c.IsolationFact(
        event.time, event.dedup_key, event.subject, data.action, data.kind.value, data.until
    )


def _by_pid(events: Iterable[_PersonEvent]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        grouped[_pid(event)].append(event)
    return grouped


async def _cases(
    conn: AsyncConnection, events: list[PublishedCase], rules: Rules
) -> c.Contribution:
    grouped = _by_pid(events)
    history = await histories(conn, case_facts, list(grouped))
    change: c.Contribution = Counter()
    rows = []
    for pid, new in grouped.items():
        old = [case_fact(r) for r in history.get(pid, [])]
        added = [c.CaseFact(e.time, e.dedup_key, e.subject, e.data.classification) for e in new]
        change.update(
            c.difference(
                c.case_history(old + added, rules.calendar), c.case_history(old, rules.calendar)
            )
        )
        placed = [case_places(r) for r in history.get(pid, [])]
        more = [pf.case_places_of(e.time, e.dedup_key, e.data) for e in new]
        change.update(pf.case_places_change(placed, placed + more, rules.calendar))
        rows += [case_row(pid, e.dedup_key, e.time, e.subject, e.data) for e in new]
    if rows:
        await conn.execute(case_facts.insert(), rows)
    return change


async def _isolations(conn: AsyncConnection, events: list[Any], rules: Rules) -> c.Contribution:
    grouped = _by_pid(events)
    history = await histories(conn, isolation_facts, list(grouped))
    change: c.Contribution = Counter()
    rows = []
    for pid, new in grouped.items():
        old = [isolation_fact(r) for r in history.get(pid, [])]
        added = [_isolation_fact(e) for e in new]
        change.update(
            c.difference(
                c.isolation_history(old + added, rules.calendar),
                c.isolation_history(old, rules.calendar),
            )
        )
        rows += [isolation_row(pid, f) for f in added]
    if rows:
        await conn.execute(isolation_facts.insert(), rows)
    return change


async def _reports(
    conn: AsyncConnection, events: list[PublishedDailyReport], rules: Rules
) -> c.Contribution:
    grouped: dict[tuple[str, date], list[PublishedDailyReport]] = defaultdict(list)
    for event in events:
        grouped[(event.subject, event.data.date)].append(event)
    change: c.Contribution = Counter()
    if not grouped:
        return change
    existing = await report_facts(conn, list(grouped))
    rows_out = []
    for (community, day), new in grouped.items():
        old = existing.get((community, day), [])
        added = [c.ReportFact(e.receivedat, e.dedup_key, e.data.zero) for e in new]
        cal, due = rules.calendar, rules.report_due_after
        change.update(
            c.difference(
                c.daily_report(community, day, old + added, cal, due),
                c.daily_report(community, day, old, cal, due),
            )
        )
        rows_out += [
            report_row(community, day, f, e.data.counts) for e, f in zip(new, added, strict=True)
        ]
    await conn.execute(daily_reports.insert(), rows_out)
    return change


async def _write_counters(
    conn: AsyncConnection, change: c.Contribution, at_places: c.Contribution
) -> frozenset[tuple[str, date]]:
    """Add community-level changes at every level, and place changes; returns the
    (unit, day) pairs changed."""
    rolled = c.roll_up(change)
    await add_rows(conn, counter_rows(rolled, at_places, day_binder(conn)))
    return frozenset((unit, day) for unit, day, _ in rolled)


@dataclass(frozen=True)
class CounterRows:
    """Changes as rows to add, each list in its table's primary-key order (on
    PostgreSQL one statement's row locks are taken in order, and every write of them
    locks the province's row first, so two writes of them meet there; a transaction of
    several runs (a rebuild's held write in a batch) can still deadlock with another
    process's, and PostgreSQL then fails one, whose batch comes back; on SQLite the
    B-tree is written in order, about a tenth less CPU a rebuild's row)."""

    counters: list[tuple[Any, ...]]
    totals: list[tuple[Any, ...]]
    places: list[tuple[Any, ...]]


def counter_rows(
    rolled: c.Contribution, at_places: c.Contribution, bind: Callable[[date], Any]
) -> CounterRows:
    """The rows that add ``rolled`` (changes at every level) to the counters and the
    summed metrics' totals, and the place changes to the place counters."""
    totals: Counter[tuple[str, str]] = Counter()
    for (unit, _day, metric), value in rolled.items():
        if metric in _SUMMED:
            totals[(unit, metric)] += value
    # the keys sort as they are: no key function called a row (a rebuild writes millions)
    return CounterRows(
        [(unit, metric, bind(day), value) for (unit, day, metric), value in sorted(rolled.items())],
        sorted((unit, metric, value) for (unit, metric), value in totals.items() if value),
        place_rows(at_places, bind),
    )


async def add_rows(conn: AsyncConnection, rows: CounterRows) -> None:
    """Add the rows to their counters, in the caller's transaction."""
    await insert_many(conn, _COUNTERS, rows.counters)
    await insert_many(conn, _TOTALS, rows.totals)
    await add_place_counters(conn, rows.places)


_SUMMED = frozenset(m.SUMMED)


_COUNTERS = Insert(counters.name, ("unit", "metric", "day", "value"), adding(counters))
_TOTALS = Insert(counter_totals.name, ("unit", "metric", "value"), adding(counter_totals))
_APPLIED = Insert(applied_events.name, ("dedup_key", "stream_sequence", "effect"))
