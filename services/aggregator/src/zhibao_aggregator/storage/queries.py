"""Reading maintained counters: lookups and indexed range sums, never event scans."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.rollup import CounterSnapshot
from zhibao_aggregator.storage.tables import counters, daily_reports
from zhibao_aggregator.storage.writer import as_utc


async def snapshot(
    conn: AsyncConnection, unit: str, day: date, expected: int, window_days: int
) -> CounterSnapshot:
    """Everything needed for one unit's figures on one day."""
    flows = await _flows(conn, unit, day)
    sums = await _sums(conn, unit, day, m.SUMMED)
    before = await _sums(conn, unit, day - timedelta(days=1), (m.IN_ISOLATION,))
    last = await conn.scalar(
        select(func.max(counters.c.day)).where(
            counters.c.unit == unit,
            counters.c.metric == m.NEW_CONFIRMED,
            counters.c.day <= day,
            counters.c.value > 0,
        )
    )
    window = await conn.scalar(
        select(func.coalesce(func.sum(counters.c.value), 0)).where(
            counters.c.unit == unit,
            counters.c.metric == m.NEW_CONFIRMED,
            counters.c.day > day - timedelta(days=window_days),
            counters.c.day <= day,
        )
    )
    return CounterSnapshot(
        flows=flows,
        sums=sums,
        in_isolation_day_before=before.get(m.IN_ISOLATION, 0),
        last_new_confirmed=last,
        confirmed_in_window=int(window or 0),
        communities_expected=expected,
    )


async def _flows(conn: AsyncConnection, unit: str, day: date) -> dict[str, int]:
    rows = await conn.execute(
        select(counters.c.metric, counters.c.value).where(
            counters.c.unit == unit, counters.c.day == day
        )
    )
    return {metric: int(value) for metric, value in rows.all()}


async def _sums(
    conn: AsyncConnection, unit: str, day: date, names: tuple[str, ...]
) -> dict[str, int]:
    rows = await conn.execute(
        select(counters.c.metric, func.sum(counters.c.value))
        .where(counters.c.unit == unit, counters.c.metric.in_(names), counters.c.day <= day)
        .group_by(counters.c.metric)
    )
    return {metric: int(total or 0) for metric, total in rows.all()}


async def series(
    conn: AsyncConnection, unit: str, metric: str, first: date, last: date
) -> dict[date, int]:
    """Daily values of one stored metric between two days (inclusive); stocks as levels."""
    if metric in m.STOCKS:
        start = await _sums(conn, unit, first - timedelta(days=1), (metric,))
        level = start.get(metric, 0)
    rows = await conn.execute(
        select(counters.c.day, counters.c.value).where(
            counters.c.unit == unit,
            counters.c.metric == metric,
            counters.c.day >= first,
            counters.c.day <= last,
        )
    )
    values = {day: int(value) for day, value in rows.all()}
    out: dict[date, int] = {}
    day = first
    while day <= last:
        if metric in m.STOCKS:
            level += values.get(day, 0)
            out[day] = level
        else:
            out[day] = values.get(day, 0)
        day += timedelta(days=1)
    return out


async def reports_for(
    conn: AsyncConnection, prefix: str, day: date
) -> dict[str, tuple[datetime, bool]]:
    """Communities under ``prefix`` that reported for ``day``: first receipt and its zero flag."""
    rows = await conn.execute(
        select(daily_reports.c.community, daily_reports.c.received_at, daily_reports.c.zero).where(
            daily_reports.c.day == day, daily_reports.c.community.startswith(prefix)
        )
    )
    first: dict[str, tuple[datetime, bool]] = {}
    for community, received, zero in rows.all():
        received = as_utc(received)
        if community not in first or received < first[community][0]:
            first[community] = (received, bool(zero))
    return first
