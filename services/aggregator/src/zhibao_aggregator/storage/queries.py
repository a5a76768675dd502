"""Reading maintained counters: lookups and indexed range sums, never event scans."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Select, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.rollup import CounterSnapshot
from zhibao_aggregator.storage.tables import counters, daily_reports
from zhibao_aggregator.storage.writer import as_utc


def _snapshot_statement() -> Select[Any]:
    c = counters.c
    day = bindparam("day", type_=Date)
    return (
        select(
            c.unit,
            c.metric,
            func.sum(case((c.day == day, c.value), else_=0)),
            func.sum(c.value),
            func.max(case((c.value > 0, c.day))),
            func.sum(case((c.day > bindparam("window_start", type_=Date), c.value), else_=0)),
            func.count(case((c.day == day, 1))),
        )
        .where(c.unit.in_(bindparam("units", expanding=True)), c.day <= day)
        .group_by(c.unit, c.metric)
    )


#: Built once: a read only binds parameters (the statement's compiled form is cached).
_SNAPSHOT = _snapshot_statement()
_UNITS_PER_QUERY = 500


async def snapshots(
    conn: AsyncConnection, expected: dict[str, int], day: date, window_days: int
) -> dict[str, CounterSnapshot]:
    """Every listed unit's figures on one day (``expected``: unit -> communities under it).

    One grouped pass over the units' counter rows up to ``day`` (primary-key
    ranges: units x metrics x days, independent of how many events were
    counted) yields per unit and metric the day's value, the running total,
    the last day it was positive and its sum over the risk window.
    """
    units = list(expected)
    by_unit: dict[str, list[Any]] = {unit: [] for unit in units}
    window_start = day - timedelta(days=window_days)
    for start in range(0, len(units), _UNITS_PER_QUERY):  # bound the bind parameters
        chunk = units[start : start + _UNITS_PER_QUERY]
        rows = await conn.execute(
            _SNAPSHOT, {"units": chunk, "day": day, "window_start": window_start}
        )
        for row in rows.all():
            by_unit[row[0]].append(row[1:])
    return {unit: _snapshot(found, expected[unit]) for unit, found in by_unit.items()}


def _snapshot(rows: list[Any], expected: int) -> CounterSnapshot:
    flows: dict[str, int] = {}
    sums: dict[str, int] = {}
    before = 0
    last: date | None = None
    window = 0
    for metric, today, total, last_positive, in_window, rows_today in rows:
        if rows_today:
            flows[metric] = int(today or 0)
        if metric in m.SUMMED:
            sums[metric] = int(total or 0)
        if metric == m.IN_ISOLATION:
            before = int(total or 0) - int(today or 0)
        if metric == m.NEW_CONFIRMED:
            last = _as_date(last_positive)
            window = int(in_window or 0)
    return CounterSnapshot(
        flows=flows,
        sums=sums,
        in_isolation_day_before=before,
        last_new_confirmed=last,
        confirmed_in_window=window,
        communities_expected=expected,
    )


def _as_date(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


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
