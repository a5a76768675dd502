"""(11) The daily work that grows with the number of units: per unit, and for a province.

In-process, on the services' own storage (their SQLite databases, migrated as
``zhibao up`` migrates them) and their own code: days of the whole registry's
traffic (every community: screenings and its daily report) are applied through
the aggregator's and the alerts service's batch handlers, then each job is timed
as the service runs it, over every unit of the registry:

* ``completeness``: the aggregator's reporting completeness of the top unit (every
  community listed: on time, late or missing), as the command centre reads it;
* ``silence_checks``: one pass of the alerts watchdog (missing daily reports, silent
  communities, missed isolation checks, clearing), which runs every 5 s;
* ``ears``: EARS (C1, C2, C3) over every unit at the configured levels and every
  configured metric for one day, as the alerts handler judges a touched series;
* ``daily_close_aggregator`` / ``daily_close_alerts``: every community's daily report
  for a day applied by each service's batch handler, in the service's batch size.

Each job's median time over ``repeats`` passes is divided by the number of
communities (the unit count every level's grows with) and extrapolated to a
province of ``PROVINCE_COMMUNITIES`` communities, against the interval the job has.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.bootstrap import reader as aggregator_reader
from zhibao_aggregator.bootstrap import rules as aggregator_rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_alerts.bootstrap import WATCHDOG_INTERVAL_S
from zhibao_alerts.config_files import Watched
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import make_engine, run_migrations
from zhibao_shared.events import PUBLISHED_EVENT, PublishedEvent
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Registry, load_registry

#: A province as the issue sizes it: tens of thousands of communities and villages.
PROVINCE_COMMUNITIES = 20_000
DAY_S = 86_400.0
ZONE = "Asia/Shanghai"
LOCAL = ZoneInfo(ZONE)
#: Seconds each job has: the watchdog passes every 5 s, the rest are due once a day.
INTERVALS_S = {
    "completeness": DAY_S,
    "silence_checks": WATCHDOG_INTERVAL_S,
    "ears": DAY_S,
    "daily_close_aggregator": DAY_S,
    "daily_close_alerts": DAY_S,
}


@dataclass
class _Services:
    """The two services' handlers and jobs over their own migrated databases."""

    registry: Registry
    communities: list[str]
    aggregator: AsyncEngine
    alerts: AsyncEngine
    aggregator_settings: AggregatorSettings
    alerts_settings: AlertsSettings
    rules: Rules
    routing: Routing
    now: datetime

    def clock(self) -> datetime:
        return self.now

    async def apply(self, events: Sequence[PublishedEvent]) -> None:
        """Apply events through both services' batch handlers, in their batch sizes."""
        await _in_batches(
            ApplyBatch(self.aggregator, aggregator_rules(self.aggregator_settings), _ignore),
            events,
            self.aggregator_settings.aggregator_batch_size,
        )
        await _in_batches(self.alerts_handler(), events, self.alerts_settings.alerts_batch_size)

    def alerts_handler(self) -> ApplyEvents:
        return ApplyEvents(
            self.alerts,
            lambda: self.rules,
            lambda: self.routing,
            ZONE,
            self.clock,
            self.alerts_settings.fever_threshold_c,
        )


def _ignore(_changed: object) -> None:
    return None


async def _in_batches(
    handler: Callable[[Sequence[Delivery]], Awaitable[None]],
    events: Sequence[PublishedEvent],
    size: int,
) -> None:
    deliveries = [Delivery(e, e.subject, n, 1) for n, e in enumerate(events, start=1)]
    for start in range(0, len(deliveries), size):
        await handler(deliveries[start : start + size])


def _event(kind: str, community: str, when: datetime, data: dict[str, Any], n: str) -> Any:
    return PUBLISHED_EVENT.validate_python(
        {
            "specversion": "1.0",
            "id": f"unit-{kind}-{n}",
            "source": f"/{community}/bench",
            "type": f"zhibao.{kind}.v1",
            "subject": community,
            "time": when.isoformat(),
            "data": data,
            "reporter": "bench",
            "receivedat": when.isoformat(),
        }
    )


def screenings(
    communities: list[str], day_start: datetime, tag: str, not_after: datetime | None = None
) -> list[PublishedEvent]:
    """Two screenings per community during a day (one with a fever every 7th), at 09:00
    and 10:00, or minutes before ``not_after`` when that is earlier (events are never in
    the future: run just after local midnight, today's morning has not come yet)."""
    events = []
    for i, code in enumerate(communities):
        for j in range(2):
            temperature = 38.1 if (i + j) % 7 == 0 else 36.5
            data = {"temperature_c": temperature, "site": "gate", "building": str(j + 1)}
            when = day_start + timedelta(hours=9 + j)
            if not_after is not None:
                when = min(when, not_after - timedelta(minutes=2 - j))
            events.append(_event("screening", code, when, data, f"{tag}-{i}-{j}"))
    return events


def daily_reports(communities: list[str], day: date, sent: datetime) -> list[PublishedEvent]:
    """Every community's daily report closing ``day`` (every 10th missing)."""
    return [
        _event("daily_report", code, sent, {"date": day.isoformat(), "zero": True}, f"{day}-{i}")
        for i, code in enumerate(communities)
        if i % 10 != 9
    ]


async def _timed(job: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await job()
    return time.perf_counter() - started


async def _median(jobs: Sequence[Callable[[], Awaitable[object]]]) -> float:
    return statistics.median([await _timed(job) for job in jobs])


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), LOCAL)


async def _prepare(root: Path, registry: Registry, history_days: int) -> _Services:
    aggregator_settings = AggregatorSettings(data_dir=root)
    alerts_settings = AlertsSettings(data_dir=root)
    aggregator_url, alerts_url = aggregator_settings.database_url(), alerts_settings.database_url()
    await run_migrations(aggregator_url, "zhibao_aggregator")
    await run_migrations(alerts_url, "zhibao_alerts")
    rules = Watched(Rules, None, "rules.yaml").current
    oncall = Watched(OnCall, None, "oncall.yaml").current
    services = _Services(
        registry=registry,
        communities=[u.code for u in registry.at_level(Level.COMMUNITY)],
        aggregator=make_engine(aggregator_url),
        alerts=make_engine(alerts_url),
        aggregator_settings=aggregator_settings,
        alerts_settings=alerts_settings,
        rules=rules,
        routing=Routing(oncall, registry, "http://aggregator"),
        now=datetime.now(UTC),
    )
    today = services.now.astimezone(LOCAL).date()
    for back in range(history_days, 0, -1):  # a history EARS has baselines in
        day = today - timedelta(days=back)
        events = screenings(services.communities, _day_start(day), f"h{back}")
        sent = _day_start(day) + timedelta(hours=21)
        await services.apply(events + daily_reports(services.communities, day, sent))
    return services


async def _measure(services: _Services, repeats: int) -> dict[str, float]:
    """Median seconds of each job over the whole registry."""
    registry, communities = services.registry, services.communities
    top = registry.top()[0].code
    today = services.now.astimezone(LOCAL).date()
    await services.apply(
        screenings(communities, _day_start(today), "today", not_after=services.now)
    )
    read = aggregator_reader(services.aggregator_settings, services.aggregator)
    dog = Watchdog(
        services.alerts, lambda: services.rules, lambda: services.routing, ZONE, services.clock
    )
    await dog.tick()  # the first pass notes every community as watched and raises alerts
    lengths = [CODE_LENGTH[level] for level in services.rules.aberration.levels]
    series: set[tuple[str, str, date]] = {
        (code[:length], str(metric), today)
        for code in communities
        for length in lengths
        for metric in services.rules.aberration.metrics
    }

    async def ears() -> None:
        async with services.alerts.connect() as conn:
            await ApplyEvents._ears(conn, series, services.rules)

    closes = [today - timedelta(days=60 + n) for n in range(repeats)]
    sent = services.now - timedelta(minutes=5)

    def close_with(
        handler: Callable[[Sequence[PublishedEvent]], Awaitable[None]], day: date
    ) -> Callable[[], Awaitable[None]]:
        return lambda: handler(daily_reports(communities, day, sent))

    async def aggregator_close(events: Sequence[PublishedEvent]) -> None:
        rules = aggregator_rules(services.aggregator_settings)
        size = services.aggregator_settings.aggregator_batch_size
        await _in_batches(ApplyBatch(services.aggregator, rules, _ignore), events, size)

    async def alerts_close(events: Sequence[PublishedEvent]) -> None:
        size = services.alerts_settings.alerts_batch_size
        await _in_batches(services.alerts_handler(), events, size)

    return {
        "completeness": await _median([lambda: read.completeness(top, today)] * repeats),
        "silence_checks": await _median([dog.tick] * repeats),
        "ears": await _median([ears] * repeats),
        "daily_close_aggregator": await _median([close_with(aggregator_close, d) for d in closes]),
        "daily_close_alerts": await _median([close_with(alerts_close, d) for d in closes]),
    }


def extrapolate(seconds: dict[str, float], communities: int) -> dict[str, Any]:
    """Per-community µs of each job and what a province of ``PROVINCE_COMMUNITIES`` takes."""
    per_unit = {job: s / communities * 1e6 for job, s in seconds.items()}
    province = {
        job: {
            "seconds": round(us * PROVINCE_COMMUNITIES / 1e6, 3),
            "interval_s": INTERVALS_S[job],
            "share_of_interval": round(us * PROVINCE_COMMUNITIES / 1e6 / INTERVALS_S[job], 5),
        }
        for job, us in per_unit.items()
    }
    return {
        "per_unit_daily_work_us": {job: round(us, 1) for job, us in per_unit.items()},
        "province_extrapolation": {"communities": PROVINCE_COMMUNITIES, "jobs": province},
    }


def phase_per_unit(repeats: int = 5, history_days: int = 14) -> dict[str, Any]:
    """(11) Time each per-unit job over the whole registry and extrapolate to a province."""
    registry = load_registry()
    # the services' handlers log every batch at debug level: not this process's output
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def run(root: Path) -> dict[str, float]:
        services = await _prepare(root, registry, history_days)
        try:
            return await _measure(services, repeats)
        finally:
            await services.aggregator.dispose()
            await services.alerts.dispose()

    with tempfile.TemporaryDirectory(prefix="zhibao-bench-units-") as root:
        seconds = asyncio.run(run(Path(root)))
    communities = len(registry.at_level(Level.COMMUNITY))
    return {
        "units": {level.value: len(registry.at_level(level)) for level in Level},
        "repeats": repeats,
        "history_days": history_days,
        "job_seconds": {job: round(s, 6) for job, s in seconds.items()},
        **extrapolate(seconds, communities),
    }
