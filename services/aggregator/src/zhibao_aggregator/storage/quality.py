"""Reading the scorecard's inputs: counters summed over a period (GROUP BY), never events.

Everything here reads maintained counters or the daily closes (one row per community,
day and close), by primary-key or index ranges over units x metrics x days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Date, and_, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import quality as q
from zhibao_aggregator.storage.by_metric import counters_by_metric
from zhibao_aggregator.storage.tables import counters, daily_reports

_CHUNK = 500
#: Judged over the days whose close is due; the other metrics over the whole period.
CLOSE_METRICS = (m.REPORTS_RECEIVED, m.REPORTS_ON_TIME, m.REPORTS_LATE)
PERIOD_METRICS = (
    m.EVENTS,
    m.LATE_EVENTS,
    q.CORRECTIONS,
    m.CASE_REPORTS,
    m.CASE_REPORTS_IN_LIMIT,
    *m.CASE_LAG_BUCKETS,
)
_c = counters.c


def _chunks(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]


async def period_sums(
    conn: AsyncConnection, units: Sequence[str], first: date, last: date, due_through: date
) -> dict[str, dict[str, int]]:
    """Per unit, each scorecard metric summed over ``first``..``last`` (the close metrics
    only up to ``due_through``)."""
    due = bindparam("due", type_=Date)
    statement = (
        select(
            _c.unit,
            _c.metric,
            func.sum(
                case(
                    (_c.metric.in_(CLOSE_METRICS), case((_c.day <= due, _c.value), else_=0)),
                    else_=_c.value,
                )
            ),
        )
        .where(
            _c.unit.in_(bindparam("units", expanding=True)),
            _c.metric.in_((*CLOSE_METRICS, *PERIOD_METRICS)),
            _c.day >= first,
            _c.day <= last,
        )
        .group_by(_c.unit, _c.metric)
    )
    out: dict[str, dict[str, int]] = {unit: {} for unit in units}
    for chunk in _chunks(units):
        rows = await conn.execute(statement, {"units": chunk, "due": due_through})
        for unit, metric, total in rows.all():
            out[unit][metric] = int(total or 0)
    return out


async def last_event_days(
    conn: AsyncConnection, units: Sequence[str], last: date
) -> dict[str, date]:
    """Per unit, the last day up to ``last`` with an event of any kind (absent: none)."""
    one = counters_by_metric.c
    statement = (
        select(one.unit, func.max(one.day))
        .where(
            one.unit.in_(bindparam("units", expanding=True)),
            one.metric == m.EVENTS,
            one.day <= last,
            one.value > 0,
        )
        .group_by(one.unit)
    )
    out: dict[str, date] = {}
    for chunk in _chunks(units):
        for unit, day in (await conn.execute(statement, {"units": chunk})).all():
            out[unit] = _as_date(day)
    return out


async def zero_contradictions(
    conn: AsyncConnection, communities: Sequence[str], first: date, last: date
) -> set[tuple[str, date]]:
    """The (community, day)s whose first close was a zero report although fevers or case
    reports were counted that day (judged from the counters as they stand now)."""

    def of(metric: str) -> Any:
        return func.sum(case((_c.metric == metric, _c.value), else_=0))

    statement = (
        select(_c.unit, _c.day)
        .where(
            _c.unit.in_(bindparam("units", expanding=True)),
            _c.metric.in_((m.REPORTS_ZERO, m.FEVERS, m.CASE_REPORTS)),
            _c.day >= first,
            _c.day <= last,
        )
        .group_by(_c.unit, _c.day)
        .having(and_(of(m.REPORTS_ZERO) > 0, or_(of(m.FEVERS) > 0, of(m.CASE_REPORTS) > 0)))
    )
    found: set[tuple[str, date]] = set()
    for chunk in _chunks(communities):
        for unit, day in (await conn.execute(statement, {"units": chunk})).all():
            found.add((unit, _as_date(day)))
    return found


Declared = dict[tuple[str, date], dict[str, int | None]]


async def declared_counts(conn: AsyncConnection, prefix: str, first: date, last: date) -> Declared:
    """Per (community, day) under ``prefix``, the counts of its latest close that declared
    any (a close sent again with corrected counts replaces the earlier declaration)."""
    d = daily_reports.c
    columns = [d[f"declared_{name}"] for name in q.DECLARABLE]
    statement = (
        select(d.community, d.day, d.received_at, d.dedup_key, *columns)
        .where(
            d.day >= first,
            d.day <= last,
            d.community.startswith(prefix, autoescape=True),
            or_(*(column.is_not(None) for column in columns)),
        )
        .order_by(d.received_at, d.dedup_key)
    )
    out: Declared = {}
    for row in (await conn.execute(statement)).all():
        out[(row[0], _as_date(row[1]))] = dict(zip(q.DECLARABLE, row[4:], strict=True))
    return out


async def counted(
    conn: AsyncConnection, days: Sequence[tuple[str, date]], first: date, last: date
) -> dict[tuple[str, date], dict[str, int]]:
    """What each community's events add up to on each of ``days`` (community, day): the
    declarable flows of the day and the people in isolation at its end (the stock's sum)."""
    out: dict[tuple[str, date], dict[str, int]] = {key: {} for key in days}
    flows = [name for name in q.DECLARABLE if name != m.IN_ISOLATION]
    one = counters_by_metric.c
    statement = select(one.unit, one.day, one.metric, one.value).where(
        one.unit.in_(bindparam("units", expanding=True)),
        or_(
            and_(one.metric.in_(flows), one.day >= first, one.day <= last),
            and_(one.metric == m.IN_ISOLATION, one.day <= last),
        ),
    )
    stock: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for chunk in _chunks(sorted({community for community, _ in days})):
        for unit, day, metric, value in (await conn.execute(statement, {"units": chunk})).all():
            if metric == m.IN_ISOLATION:
                stock[unit].append((_as_date(day), int(value)))
            elif (unit, _as_date(day)) in out:
                out[(unit, _as_date(day))][metric] = int(value)
    for (community, day), figures in out.items():
        figures[m.IN_ISOLATION] = sum(v for d, v in stock.get(community, []) if d <= day)
    return out


def _as_date(value: Any) -> date:
    """SQLite may give a day back as text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
