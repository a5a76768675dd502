"""Applying a batch of events: one transaction for dedup keys, counts, fevers and alerts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import correcting, store
from zhibao_alerts.domain import clusters, triggers
from zhibao_alerts.domain.clusters import place_of
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.domain.corrections import Decision, Judge
from zhibao_alerts.domain.ears import EarsPoint
from zhibao_alerts.keypersons import KeyPersons
from zhibao_alerts.place_names import grid_of, place_name
from zhibao_alerts.raising import (
    Raised,
    Received,
    Routing,
    raise_alerts,
    received_by_community_day,
)
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.consumer import Delivery
from zhibao_shared.direct import DirectTransactions
from zhibao_shared.events import (
    FEVER_THRESHOLD_C,
    EventType,
    PublishedCase,
    PublishedCorrection,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
)
from zhibao_shared.hierarchy import CODE_LENGTH, lineage

#: The code lengths of every level: a unit's first day is kept at each.

#: Event types no rule looks at (a task result is the response service's business).
IGNORED_TYPES = frozenset({EventType.TASK_RESULT})
#: EARS needs a 7-day baseline, a 2-day lag and 3 days for C3.
SERIES_DAYS = 14


def _lock_names(batch: Sequence[Delivery]) -> Iterator[str]:
    """The persons, fever places and communities (their events and corrections) a batch
    reads and extends; a generator, so that SQLite (no locks) never pays for it."""
    for delivery in batch:
        event = delivery.event
        # an event and its correction one at a time, whichever is applied or held first
        yield f"events of {event.subject}"
        if isinstance(event, PublishedCorrection):
            continue
        person = getattr(event.data, "person", None)
        if person is not None:
            yield f"person {person.pid}"
        if isinstance(event, PublishedScreening):
            place = place_of(event)
            if place is not None:
                yield f"place {event.subject} {place}"


def _recorded(events: dict[str, PublishedEvent]) -> set[str]:
    """The keys that ``correcting.prepare`` records (every event but corrections)."""
    return {k for k, e in events.items() if not isinstance(e, PublishedCorrection)}


@dataclass
class _Effects:
    """What a batch of new events changes, gathered before anything is written."""

    latest: dict[str, datetime] = field(default_factory=dict)
    #: each community's earliest local day in the batch (EARS's history starts there)
    first_days: dict[str, date] = field(default_factory=dict)
    isolations: list[store.IsolationNote] = field(default_factory=list)
    reports: set[tuple[str, date]] = field(default_factory=set)
    fevers: list[dict[str, Any]] = field(default_factory=list)
    #: the new fevers' times at each (community, place)
    places: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    #: screenings/cases that name nobody, per (community, metric, day): each counts
    anonymous: dict[tuple[str, str, date], int] = field(default_factory=lambda: defaultdict(int))
    #: (community, metric, day, pid): a named person to count once a day
    persons: set[tuple[str, str, date, str]] = field(default_factory=set)
    immediate: list[Raised] = field(default_factory=list)
    #: (rule, pid) of the immediate triggers about a person, by trigger dedup key
    case_persons: dict[str, tuple[str, str]] = field(default_factory=dict)

    def track(self, event: PublishedEvent, day: date) -> None:
        """State the time-based rules (watchdog) and EARS's history look at."""
        self.track_time(event, day)
        if isinstance(event, PublishedIsolation):
            self.isolations.append(
                store.IsolationNote(
                    event.data.person.pid,
                    event.subject,
                    event.data.action.value,
                    event.time,
                    event.dedup_key,
                )
            )
        elif isinstance(event, PublishedDailyReport):
            self.reports.add((event.subject, event.data.date))

    def track_time(self, event: PublishedEvent, day: date) -> None:
        """Only that the community sent something, and on which day."""
        self.latest[event.subject] = max(self.latest.get(event.subject, event.time), event.time)
        if day < self.first_days.get(event.subject, date.max):
            self.first_days[event.subject] = day

    def fever(self, event: PublishedScreening) -> None:
        """A fever at a place (screenings that say where)."""
        place = place_of(event)
        if place is None:
            return
        person = event.data.person
        self.fevers.append(
            {
                "dedup_key": event.dedup_key,
                "community": event.subject,
                "place": place,
                "at": event.time,
                "person": person.pid if person is not None else None,
            }
        )
        self.places.setdefault((event.subject, place), []).append(event.time)

    def count(self, event: PublishedEvent, metric: str, day: date) -> None:
        """One more in a daily series; a named person counts once a day (decided against
        the store for the whole batch)."""
        person = getattr(event.data, "person", None)
        if person is not None:
            self.persons.add((event.subject, metric, day, person.pid))
        else:
            self.anonymous[(event.subject, metric, day)] += 1

    def case(self, event: PublishedEvent, trigger: triggers.Trigger) -> None:
        """An immediate alert; one about a person is raised once per person and rule."""
        person = getattr(event.data, "person", None)
        if isinstance(event, PublishedCase) and person is not None:
            key = (trigger.rule, person.pid)
            if key in self.case_persons.values():
                return
            self.case_persons[trigger.dedup_key] = key
        self.immediate.append((trigger, None))


class ApplyEvents:
    """The consumer's batch handler for the alerts service.

    A batch costs a fixed number of statements whatever its size: its effects are
    gathered in memory first and written set-wise, in one transaction.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        routing: Callable[[], Routing],
        timezone: str,
        clock: Callable[[], datetime],
        fever_threshold_c: float = FEVER_THRESHOLD_C,
        on_alert: Callable[[], None] | None = None,
        care: KeyPersons | None = None,
    ) -> None:
        self._transactions = DirectTransactions(engine)
        #: key persons' watch (registrations, places, contacts), when kept
        self._care = care
        self._fever_threshold_c = fever_threshold_c
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock
        self._on_alert = on_alert
        #: units' first days as committed: a batch writes only the units it moves earlier
        self._first_days: dict[str, date] = {}
        #: communities' latest event times as committed (by this instance, at least)
        self._activity: dict[str, datetime] = {}
        self._noted: dict[str, datetime] = {}

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Apply every new event of the batch, then evaluate the windowed rules once, then
        the batch's corrections of events applied already; once committed, tell
        ``on_alert`` if alerts were opened."""
        self._noted = {}
        opened, firsts = await self._transactions.run(
            lambda conn: self._in_transaction(conn, batch)
        )
        self._first_days.update(firsts)
        self._activity.update(self._noted)
        if opened and self._on_alert is not None:
            self._on_alert()

    def close(self) -> None:
        """Close the handler's own (direct SQLite) connections."""
        self._transactions.dispose()

    async def _in_transaction(
        self, conn: AsyncConnection, batch: Sequence[Delivery]
    ) -> tuple[list[int], dict[str, date]]:
        """The batch's work in one transaction: the alerts opened, the units' new first days.

        On SQLite this runs whole in a worker thread (:mod:`zhibao_shared.direct`): it must
        await nothing but the connection."""
        # several instances may share the database: one at a time per person and place
        await lock_names(conn, _lock_names(batch))
        fresh = await store.new_keys(conn, [d.event.dedup_key for d in batch])
        events: dict[str, PublishedEvent] = {}
        for delivery in batch:  # an event delivered twice in one batch is applied once
            key = delivery.event.dedup_key
            if delivery.event.type in IGNORED_TYPES:
                continue
            if key in fresh and key not in events:
                events[key] = delivery.event
        rules = self._rules()
        judge = Judge(self._zone, self._fever_threshold_c, rules)
        prepared = await correcting.prepare(conn, list(events.values()), judge, self._clock())
        await store.mark_applied(conn, fresh - _recorded(events))
        effects = self._gather(sorted(prepared.counted, key=lambda e: e.time), rules)
        for event in prepared.absent:  # retracted before it arrived: it was sent, though
            effects.track_time(event, judge.day(event))
        firsts = self._new_first_days(effects.first_days)
        await store.note_first_days(conn, firsts)
        received = received_by_community_day(events.values(), self._zone)
        routing = self._routing()
        opened = await self._apply(conn, effects, rules, routing, received)
        if self._care is not None:
            await self._care.note_events(conn, prepared.counted)
        opened += await self._correct(conn, prepared.later, judge, routing, received)
        return opened, firsts

    async def _apply(
        self,
        conn: AsyncConnection,
        effects: _Effects,
        rules: Rules,
        routing: Routing,
        received: Received,
    ) -> list[int]:
        now = self._clock()
        self._noted = await store.note_activity(conn, effects.latest, self._activity)
        await store.note_isolations(conn, effects.isolations)
        await store.note_daily_reports(conn, effects.reports)
        await store.add_fevers(conn, effects.fevers)
        counts = await self._daily_counts(conn, effects, rules)
        await store.add_counts(conn, counts)
        raised = await self._new_cases(conn, effects)
        raised += await self._clusters(conn, effects, rules)
        raised += await self._aberrations(conn, set(counts), rules)
        return await raise_alerts(conn, raised, routing, now, self._zone, received)

    async def _correct(
        self,
        conn: AsyncConnection,
        later: Sequence[Decision],
        judge: Judge,
        routing: Routing,
        received: Received,
    ) -> list[int]:
        """Apply corrections of recorded events: take back what each event contributed,
        apply it as corrected, and judge again the alerts its evidence raised."""
        found = await correcting.changes(conn, later, judge)
        if not found:
            return []
        rules, now = judge.rules, self._clock()
        lengths = [CODE_LENGTH[level] for level in rules.aberration.levels]
        undone = await correcting.undo(conn, found, judge, lengths)
        corrected = [c.after for c in found if c.after is not None]
        effects = self._gather(sorted(corrected, key=lambda e: e.time), rules)
        await store.add_fevers(conn, effects.fevers)
        await store.note_daily_reports(conn, effects.reports)
        counts = await self._daily_counts(conn, effects, rules)
        for series, n in undone.deltas.items():
            counts[series] += n
        await store.add_counts(conn, {s: n for s, n in counts.items() if n})
        raised = await self._new_cases(conn, effects)
        raised += await self._clusters(conn, effects, rules)
        moved = await correcting.withdraw_immediate(conn, found, judge, now)
        raised += await self._new_cases(conn, self._immediate_only(moved, rules))
        await correcting.rejudge_clusters(conn, undone.windows, rules, now, routing.places)
        changed = {s for s, n in counts.items() if n and s[1] in rules.aberration.metrics}
        verdicts = await self._ears(conn, changed, rules)
        decisions = correcting.series_decisions(found, lengths)
        raised += await correcting.rejudge_ears(conn, verdicts, decisions, rules, now)
        await correcting.recompute_isolations(conn, correcting.isolated_persons(found))
        await correcting.recompute_reports(conn, found)
        # the corrected events reached intake with their corrections (history or news)
        evidence = {**received}
        for key, at in received_by_community_day([*corrected, *moved], self._zone).items():
            evidence[key] = max(at, evidence.get(key, at))
        return await raise_alerts(conn, raised, routing, now, self._zone, evidence)

    def _immediate_only(self, events: Sequence[PublishedEvent], rules: Rules) -> _Effects:
        """The immediate triggers of ``events`` alone (counted already: nothing else)."""
        effects = _Effects()
        for event in events:
            trigger = triggers.immediate(event, rules, event.time.astimezone(self._zone).date())
            if trigger is not None:
                effects.case(event, trigger)
        return effects

    def _gather(self, events: list[PublishedEvent], rules: Rules) -> _Effects:
        """The batch's effects, its events taken in event time."""
        effects = _Effects()
        for event in events:
            day = event.time.astimezone(self._zone).date()
            effects.track(event, day)
            trigger = triggers.immediate(event, rules, day)
            if trigger is not None:
                effects.case(event, trigger)
            metric = self._counted_metric(event)
            if metric is not None:
                effects.count(event, metric, day)
            if metric == "fevers" and isinstance(event, PublishedScreening):
                effects.fever(event)
        return effects

    def _new_first_days(self, communities: dict[str, date]) -> dict[str, date]:
        """The units (every level) whose first day of data the batch's communities' days
        make earlier than known to this instance (the store keeps the earliest anyway)."""
        units: dict[str, date] = {}
        for community, day in communities.items():
            for unit in lineage(community):
                if day < min(units.get(unit, date.max), self._first_days.get(unit, date.max)):
                    units[unit] = day
        return units

    @staticmethod
    async def _daily_counts(
        conn: AsyncConnection, effects: _Effects, rules: Rules
    ) -> dict[tuple[str, str, date], int]:
        """What the batch adds to each unit's daily series: a named person once a day per
        unit (against those counted already), a screening or case naming nobody each."""
        levels = [CODE_LENGTH[level] for level in rules.aberration.levels]
        counts: dict[tuple[str, str, date], int] = defaultdict(int)
        for (community, metric, day), n in effects.anonymous.items():
            for length in levels:
                counts[(community[:length], metric, day)] += n
        wanted = {
            (community[:length], metric, day, pid)
            for community, metric, day, pid in effects.persons
            for length in levels
        }
        for unit, metric, day, _pid in await store.new_person_days(conn, wanted):
            counts[(unit, metric, day)] += 1
        return counts

    @staticmethod
    async def _new_cases(conn: AsyncConnection, effects: _Effects) -> list[Raised]:
        """The immediate triggers, less those about a person already alerted on."""
        fresh = await store.new_case_persons(conn, set(effects.case_persons.values()))
        kept: list[Raised] = []
        for trigger, bound in effects.immediate:
            person = effects.case_persons.get(trigger.dedup_key)
            if person is None or person in fresh:
                kept.append((trigger, bound))
        return kept

    def _counted_metric(self, event: PublishedEvent) -> str | None:
        return triggers.counted_metric(event, self._fever_threshold_c)

    async def _clusters(
        self, conn: AsyncConnection, effects: _Effects, rules: Rules
    ) -> list[Raised]:
        """Every window a new fever can complete, per place; a cluster counts on the alert
        its fevers were counted in already (see ``Cluster.alert_day``)."""
        window = timedelta(hours=rules.cluster.window_hours)
        spans = {
            place: (min(times) - window, max(times) + window)
            for place, times in effects.places.items()
        }
        stored = await store.fevers_between(conn, spans)
        new = {f["dedup_key"] for f in effects.fevers}
        raised: list[Raised] = []
        marks: dict[str, date] = {}
        places = self._routing().places
        for (community, place), fevers in stored.items():
            for found in clusters.clusters(fevers, new, window, rules.cluster.min_fevers):
                day = found.alert_day(self._zone, rules.cluster.min_fevers)
                trigger = triggers.cluster(
                    community,
                    place,
                    found.persons,
                    rules,
                    day,
                    name=place_name(places, place),
                    grid=grid_of(places, place),
                )
                raised.append((trigger, None))
                marks.update({f.key: day for f in found.fevers if f.cluster_day is None})
        await store.mark_clusters(conn, marks)
        return raised

    @staticmethod
    async def _aberrations(
        conn: AsyncConnection, touched: set[tuple[str, str, date]], rules: Rules
    ) -> list[Raised]:
        touched = {(u, m, d) for u, m, d in touched if m in rules.aberration.metrics}
        verdicts = await ApplyEvents._ears(conn, touched, rules)
        return [
            (trigger, point.upper_bound)
            for series in sorted(verdicts)
            for trigger, point in verdicts[series]
        ]

    @staticmethod
    async def _ears(
        conn: AsyncConnection, touched: set[tuple[str, str, date]], rules: Rules
    ) -> dict[tuple[str, str, date], list[tuple[triggers.Trigger, EarsPoint]]]:
        """The EARS alarms of each (unit, metric, day) series' day (none: no alarm)."""
        if not touched:
            return {}
        span = timedelta(days=SERIES_DAYS - 1)
        first = min(d for _, _, d in touched) - span
        last = max(d for _, _, d in touched)
        stored = await store.daily_values(conn, {(u, m) for u, m, _ in touched}, first, last)
        firsts = await store.first_days(conn, {u for u, _, _ in touched})
        verdicts: dict[tuple[str, str, date], list[tuple[triggers.Trigger, EarsPoint]]] = {}
        for unit, metric, day in sorted(touched):
            days = [day - timedelta(days=n) for n in range(SERIES_DAYS - 1, -1, -1)]
            first = firsts.get(unit, day)
            values: list[float | None] = [
                float(stored.get((unit, metric, d), 0)) if d >= first else None for d in days
            ]
            verdicts[(unit, metric, day)] = triggers.aberrations(unit, metric, days, values, rules)
        return verdicts
