"""Applying a batch of events: one transaction for dedup keys, counts, fevers and alerts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import store
from zhibao_alerts.domain import triggers
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.raising import Routing, raise_alert
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


class ApplyEvents:
    """The consumer's batch handler for the alerts service."""

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        routing: Callable[[], Routing],
        timezone: str,
        clock: Callable[[], datetime],
        fever_threshold_c: float = FEVER_THRESHOLD_C,
    ) -> None:
        self._engine = engine
        self._fever_threshold_c = fever_threshold_c
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Apply every new event of the batch, then evaluate the windowed rules once."""
        async with self._engine.begin() as conn:
            fresh = await store.new_keys(conn, [d.event.dedup_key for d in batch])
            events = [d.event for d in batch if d.event.dedup_key in fresh]
            await self._apply(conn, events, self._rules(), self._routing())

    async def _apply(
        self, conn: AsyncConnection, events: list[PublishedEvent], rules: Rules, routing: Routing
    ) -> None:
        now = self._clock()
        places: dict[tuple[str, str], datetime] = {}
        counts: dict[tuple[str, str, date], int] = defaultdict(int)
        for event in events:
            day = event.time.astimezone(self._zone).date()
            await self._track(conn, event)
            trigger = triggers.immediate(event, rules, day)
            if trigger is not None:
                await raise_alert(conn, trigger, routing, now)
            metric = self._counted_metric(event)
            if metric is not None:
                for level in rules.aberration.levels:
                    counts[(event.subject[: CODE_LENGTH[level]], metric, day)] += 1
            if metric == "fevers" and isinstance(event, PublishedScreening):
                place = place_of(event)
                if place is not None:
                    await store.add_fever(conn, event.dedup_key, event.subject, place, event.time)
                    key = (event.subject, place)
                    places[key] = max(places.get(key, event.time), event.time)
        await store.add_counts(conn, counts)
        await self._clusters(conn, places, rules, routing, now)
        await self._aberrations(conn, {(u, m, d) for u, m, d in counts}, rules, routing, now)

    @staticmethod
    async def _track(conn: AsyncConnection, event: PublishedEvent) -> None:
        """State the time-based rules (watchdog) look at."""
        await store.note_activity(conn, event.subject, event.time)
        if isinstance(event, PublishedIsolation):
            action = event.data.action.value
            await store.note_isolation(
                conn, event.data.person.pid, event.subject, action, event.time
            )
        elif isinstance(event, PublishedDailyReport):
            await store.note_daily_report(conn, event.subject, event.data.date)

    def _counted_metric(self, event: PublishedEvent) -> str | None:
        if isinstance(event, PublishedScreening):
            return "fevers" if event.data.temperature_c >= self._fever_threshold_c else None
        if isinstance(event, PublishedCase):
            suspected = event.data.classification is Classification.SUSPECTED
            return "suspected" if suspected else None
        return None

    async def _clusters(
        self,
        conn: AsyncConnection,
        places: dict[tuple[str, str], datetime],
        rules: Rules,
        routing: Routing,
        now: datetime,
    ) -> None:
        window = timedelta(hours=rules.cluster.window_hours)
        for (community, place), latest in places.items():
            count = await store.fevers_between(conn, community, place, latest - window, latest)
            day = latest.astimezone(self._zone).date()
            trigger = triggers.cluster(community, place, count, rules, day)
            if trigger is not None:
                await raise_alert(conn, trigger, routing, now)

    async def _aberrations(
        self,
        conn: AsyncConnection,
        touched: set[tuple[str, str, date]],
        rules: Rules,
        routing: Routing,
        now: datetime,
    ) -> None:
        for unit, metric, day in sorted(touched):
            if metric not in rules.aberration.metrics:
                continue
            days = [day - timedelta(days=n) for n in range(SERIES_DAYS - 1, -1, -1)]
            values = await store.series(conn, unit, metric, days)
            for trigger, point in triggers.aberrations(unit, metric, days, values, rules):
                await raise_alert(conn, trigger, routing, now, point.upper_bound)
