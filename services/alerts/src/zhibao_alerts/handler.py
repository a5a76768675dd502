"""Applying a batch of events: one transaction for dedup keys, counts, fevers and alerts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import store
from zhibao_alerts.domain import triggers
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.raising import Raised, Routing, raise_alerts, received_by_community_day
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import (
    FEVER_THRESHOLD_C,
    Classification,
    PublishedCase,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
)
from zhibao_shared.hierarchy import CODE_LENGTH

#: EARS needs a 7-day baseline, a 2-day lag and 3 days for C3.
SERIES_DAYS = 14


def place_of(event: PublishedScreening) -> str | None:
    """The compound/building a screening happened at, if it says."""
    data = event.data
    if data.building:
        return f"{data.compound or '-'}/{data.building}"
    return data.compound


@dataclass
class _Effects:
    """What a batch of new events changes, gathered before anything is written."""

    latest: dict[str, datetime] = field(default_factory=dict)
    isolations: list[store.IsolationNote] = field(default_factory=list)
    reports: set[tuple[str, date]] = field(default_factory=set)
    fevers: list[dict[str, Any]] = field(default_factory=list)
    places: dict[tuple[str, str], datetime] = field(default_factory=dict)
    counts: dict[tuple[str, str, date], int] = field(default_factory=lambda: defaultdict(int))
    immediate: list[Raised] = field(default_factory=list)

    def track(self, event: PublishedEvent) -> None:
        """State the time-based rules (watchdog) look at."""
        self.latest[event.subject] = max(self.latest.get(event.subject, event.time), event.time)
        if isinstance(event, PublishedIsolation):
            self.isolations.append(
                store.IsolationNote(
                    event.data.person.pid, event.subject, event.data.action.value, event.time
                )
            )
        elif isinstance(event, PublishedDailyReport):
            self.reports.add((event.subject, event.data.date))

    def fever(self, event: PublishedScreening) -> None:
        """A fever at a place (screenings that say where)."""
        place = place_of(event)
        if place is None:
            return
        self.fevers.append(
            {
                "dedup_key": event.dedup_key,
                "community": event.subject,
                "place": place,
                "at": event.time,
            }
        )
        key = (event.subject, place)
        self.places[key] = max(self.places.get(key, event.time), event.time)


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
    ) -> None:
        self._engine = engine
        self._fever_threshold_c = fever_threshold_c
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock
        self._on_alert = on_alert

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Apply every new event of the batch, then evaluate the windowed rules once;
        once committed, tell ``on_alert`` if alerts were opened."""
        async with self._engine.begin() as conn:
            fresh = await store.new_keys(conn, [d.event.dedup_key for d in batch])
            events: dict[str, PublishedEvent] = {}
            for delivery in batch:  # an event delivered twice in one batch is applied once
                key = delivery.event.dedup_key
                if key in fresh and key not in events:
                    events[key] = delivery.event
            opened = await self._apply(conn, list(events.values()), self._rules(), self._routing())
        if opened and self._on_alert is not None:
            self._on_alert()

    async def _apply(
        self, conn: AsyncConnection, events: list[PublishedEvent], rules: Rules, routing: Routing
    ) -> list[int]:
        now = self._clock()
        effects = self._gather(events, rules)
        await store.note_activity(conn, effects.latest)
        await store.note_isolations(conn, effects.isolations)
        await store.note_daily_reports(conn, effects.reports)
        await store.add_fevers(conn, effects.fevers)
        await store.add_counts(conn, effects.counts)
        raised = effects.immediate
        raised += await self._clusters(conn, effects.places, rules)
        raised += await self._aberrations(conn, set(effects.counts), rules)
        received = received_by_community_day(events, self._zone)
        return await raise_alerts(conn, raised, routing, now, received)

    def _gather(self, events: list[PublishedEvent], rules: Rules) -> _Effects:
        effects = _Effects()
        for event in events:
            day = event.time.astimezone(self._zone).date()
            effects.track(event)
            trigger = triggers.immediate(event, rules, day)
            if trigger is not None:
                effects.immediate.append((trigger, None))
            metric = self._counted_metric(event)
            if metric is not None:
                for level in rules.aberration.levels:
                    effects.counts[(event.subject[: CODE_LENGTH[level]], metric, day)] += 1
            if metric == "fevers" and isinstance(event, PublishedScreening):
                effects.fever(event)
        return effects

    def _counted_metric(self, event: PublishedEvent) -> str | None:
        if isinstance(event, PublishedScreening):
            return "fevers" if event.data.temperature_c >= self._fever_threshold_c else None
        if isinstance(event, PublishedCase):
            suspected = event.data.classification is Classification.SUSPECTED
            return "suspected" if suspected else None
        return None

    async def _clusters(
        self, conn: AsyncConnection, places: dict[tuple[str, str], datetime], rules: Rules
    ) -> list[Raised]:
        window = timedelta(hours=rules.cluster.window_hours)
        counts = await store.fever_counts(
            conn, {key: (latest - window, latest) for key, latest in places.items()}
        )
        raised: list[Raised] = []
        for (community, place), latest in places.items():
            day = latest.astimezone(self._zone).date()
            trigger = triggers.cluster(community, place, counts[(community, place)], rules, day)
            if trigger is not None:
                raised.append((trigger, None))
        return raised

    @staticmethod
    async def _aberrations(
        conn: AsyncConnection, touched: set[tuple[str, str, date]], rules: Rules
    ) -> list[Raised]:
        touched = {(u, m, d) for u, m, d in touched if m in rules.aberration.metrics}
        if not touched:
            return []
        span = timedelta(days=SERIES_DAYS - 1)
        first = min(d for _, _, d in touched) - span
        last = max(d for _, _, d in touched)
        stored = await store.daily_values(conn, {(u, m) for u, m, _ in touched}, first, last)
        raised: list[Raised] = []
        for unit, metric, day in sorted(touched):
            days = [day - timedelta(days=n) for n in range(SERIES_DAYS - 1, -1, -1)]
            values = [float(stored.get((unit, metric, d), 0)) for d in days]
            for trigger, point in triggers.aberrations(unit, metric, days, values, rules):
                raised.append((trigger, point.upper_bound))
        return raised
