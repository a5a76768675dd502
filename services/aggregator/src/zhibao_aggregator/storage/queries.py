"""Reading maintained counters: lookups and indexed range sums, never event scans."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Date,
    and_,
    bindparam,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.rollup import CounterSnapshot
from zhibao_aggregator.storage.by_metric import counters_by_metric
from zhibao_aggregator.storage.tables import counter_totals, counters, daily_reports
from zhibao_aggregator.storage.writer import as_utc


def _snapshot_statement() -> CompoundSelect[Any]:
    """Four indexed reads in one round trip, each tagged with its part:

    * ``d``: every counter row of the units from ``day`` on (the day's flows, and the
      rows after it that the totals hold but a figure of ``day`` must not);
    * ``t``: the running totals of the summed metrics;
    * ``w``: new confirmed cases in the risk window before ``day``;
    * ``l``: the last day up to ``day`` with a new confirmed case.

    ``d`` is a range of the counters' key (unit, day, metric), ``t`` of the totals' key,
    ``w`` and ``l`` of the ``(unit, metric, day)`` index (:mod:`.by_metric`): the work
    does not grow with the length of the history (``l`` reads the days with new
    confirmed cases only).
    """
    c, t, one = counters.c, counter_totals.c, counters_by_metric.c
    units: BindParameter[str] = bindparam("units", expanding=True)
    day = bindparam("day", type_=Date)
    confirmed = and_(one.unit.in_(units), one.metric == m.NEW_CONFIRMED)
    return union_all(
        select(literal_column("'d'"), c.unit, c.metric, c.day, c.value).where(
            c.unit.in_(units), c.day >= day
        ),
        select(literal_column("'t'"), t.unit, t.metric, null(), t.value).where(t.unit.in_(units)),
        select(literal_column("'w'"), one.unit, one.metric, one.day, one.value).where(
            confirmed, one.day > bindparam("window_start", type_=Date), one.day < day
        ),
        select(literal_column("'l'"), one.unit, one.metric, func.max(one.day), literal_column("0"))
        .where(confirmed, one.day <= day, one.value > 0)
        .group_by(one.unit, one.metric),
    )


#: Built once: a read only binds parameters (the statement's compiled form is cached).
_SNAPSHOT = _snapshot_statement()
_UNITS_PER_QUERY = 250


async def snapshots(
    conn: AsyncConnection, expected: dict[str, int], day: date, window_days: int
) -> dict[str, CounterSnapshot]:
    """Every listed unit's figures on one day (``expected``: unit -> communities under it).

    One statement per chunk of units (see :func:`_snapshot_statement`): the day's
    flows, the summed metrics as their totals less what came after the day, and
    the new confirmed cases' last day and sum over the risk window.
    """
    units = list(expected)
    parts: dict[str, _Parts] = {unit: _Parts() for unit in units}
    window_start = day - timedelta(days=window_days)
    for start in range(0, len(units), _UNITS_PER_QUERY):  # bound the bind parameters
        chunk = units[start : start + _UNITS_PER_QUERY]
        rows = await conn.execute(
            _SNAPSHOT, {"units": chunk, "day": day, "window_start": window_start}
        )
        for part, unit, metric, found_day, value in rows.all():
            parts[unit].add(part, metric, _as_date(found_day), int(value or 0), day)
    return {unit: found.snapshot(expected[unit]) for unit, found in parts.items()}


@dataclass
class _Parts:
    """What the snapshot statement returned for one unit."""

    flows: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    later: Counter[str] = field(default_factory=Counter)
    window: int = 0
    last: date | None = None

    def add(self, part: str, metric: str, found: date | None, value: int, day: date) -> None:
        if part == "t":
            self.totals[metric] = value
        elif part == "l":
            self.last = found
        elif part == "w":
            self.window += value
        elif found == day:
            self.flows[metric] = value
        else:
            self.later[metric] += value

    def snapshot(self, expected: int) -> CounterSnapshot:
        sums = {metric: self.totals.get(metric, 0) - self.later[metric] for metric in m.SUMMED}
        today = self.flows.get(m.IN_ISOLATION, 0)
        return CounterSnapshot(
            flows=self.flows,
            sums=sums,
            in_isolation_day_before=sums[m.IN_ISOLATION] - today,
            last_new_confirmed=self.last,
            confirmed_in_window=self.window + self.flows.get(m.NEW_CONFIRMED, 0),
            communities_expected=expected,
        )


def _as_date(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


async def _sums(
    conn: AsyncConnection, unit: str, day: date, names: tuple[str, ...]
) -> dict[str, int]:
    """Summed metrics up to ``day``: their totals less the rows after it."""
    totals = await conn.execute(
        select(counter_totals.c.metric, counter_totals.c.value).where(
            counter_totals.c.unit == unit, counter_totals.c.metric.in_(names)
        )
    )
    found = {metric: int(value) for metric, value in totals.all()}
    one = counters_by_metric.c
    later = await conn.execute(
        select(one.metric, func.sum(one.value))
        .where(one.unit == unit, one.metric.in_(names), one.day > day)
        .group_by(one.metric)
    )
    for metric, value in later.all():
        found[metric] = found.get(metric, 0) - int(value or 0)
    return found


async def series(
    conn: AsyncConnection, unit: str, metric: str, first: date, last: date
) -> dict[date, int]:
    """Daily values of one stored metric between two days (inclusive); stocks as levels."""
    if metric in m.STOCKS:
        start = await _sums(conn, unit, first - timedelta(days=1), (metric,))
        level = start.get(metric, 0)
    one = counters_by_metric.c
    rows = await conn.execute(
        select(one.day, one.value).where(
            one.unit == unit, one.metric == metric, one.day >= first, one.day <= last
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
