"""Reading task rollups: per community counts of a day, durations to done, overdue lists.

One grouped pass over the spans relevant to the day (open at its end or
closed during it) under the units asked for; the levels above communities are
sums of their communities (codes nest by prefix).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import tasks as t
from zhibao_aggregator.storage.task_tables import task_spans
from zhibao_shared.task_events import TaskState

Figures = dict[str, int | float | None]


def _roots(codes: Iterable[str]) -> list[str]:
    """The codes that are not under another listed code (their prefixes cover the rest)."""
    ordered = sorted(set(codes), key=len)
    roots: list[str] = []
    for code in ordered:
        if not any(code.startswith(root) for root in roots):
            roots.append(code)
    return roots


def _under(codes: Iterable[str]) -> ColumnElement[bool]:
    return or_(*(task_spans.c.unit.startswith(code, autoescape=True) for code in _roots(codes)))


def _open_at_end(bounds: t.DayBounds) -> ColumnElement[bool]:
    s = task_spans.c
    return or_(s.closed_at.is_(None), s.closed_at >= bounds.end)


def _relevant(bounds: t.DayBounds) -> ColumnElement[bool]:
    s = task_spans.c
    return and_(s.opened_at < bounds.end, or_(s.closed_at.is_(None), s.closed_at >= bounds.start))


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _closed_as(outcome: TaskState, bounds: t.DayBounds) -> ColumnElement[bool]:
    s = task_spans.c
    return and_(s.outcome == outcome.value, s.closed_at < bounds.end)


async def task_figures(
    conn: AsyncConnection, codes: list[str], bounds: t.DayBounds
) -> dict[str, Figures]:
    """The task figures of each unit in ``codes`` for the day of ``bounds``."""
    if not codes:
        return {}
    s = task_spans.c
    open_end = _open_at_end(bounds)
    need = s.kind.startswith(t.NEED_KIND_PREFIX, autoescape=True)
    rows = await conn.execute(
        select(
            s.unit,
            _count(open_end),
            _count(and_(open_end, s.due < bounds.reference)),
            _count(_closed_as(TaskState.DONE, bounds)),
            _count(_closed_as(TaskState.UNREACHABLE, bounds)),
            _count(and_(need, open_end)),
            _count(and_(need, open_end, s.due < bounds.reference)),
        )
        .where(_under(codes), _relevant(bounds))
        .group_by(s.unit)
    )
    per_community = [(unit, [int(v) for v in values]) for unit, *values in rows.all()]
    hours = await _hours_to_done(conn, codes, bounds)
    out: dict[str, Figures] = {}
    for code in codes:
        sums = [0] * 6
        for unit, values in per_community:
            if unit.startswith(code):
                sums = [a + b for a, b in zip(sums, values, strict=True)]
        durations = [h for unit, _kind, h in hours if unit.startswith(code)]
        needs = [h for unit, kind, h in hours if unit.startswith(code) and _is_need(kind)]
        out[code] = {
            t.TASKS_OPEN: sums[0],
            t.TASKS_OVERDUE: sums[1],
            t.TASKS_DONE: sums[2],
            t.TASKS_UNREACHABLE: sums[3],
            t.MEDIAN_HOURS_TO_DONE: t.median_hours(durations),
            t.NEEDS_OPEN: sums[4],
            t.NEEDS_OVERDUE: sums[5],
            t.NEEDS_MEDIAN_HOURS: t.median_hours(needs),
        }
    return out


def _is_need(kind: str) -> bool:
    return kind.startswith(t.NEED_KIND_PREFIX)


async def _hours_to_done(
    conn: AsyncConnection, codes: list[str], bounds: t.DayBounds
) -> list[tuple[str, str, float]]:
    """(community, kind, hours from issue to done) of the tasks done during the day."""
    s = task_spans.c
    rows = await conn.execute(
        select(s.unit, s.kind, s.issued_at, s.closed_at).where(
            _under(codes),
            s.outcome == TaskState.DONE.value,
            s.closed_at >= bounds.start,
            s.closed_at < bounds.end,
            s.issued_at.is_not(None),
        )
    )
    return [
        (unit, kind, (closed - issued).total_seconds() / 3600)
        for unit, kind, issued, closed in rows
    ]


@dataclass(frozen=True)
class OverdueTask:
    """An overdue task as the command centre sees it (no personal data)."""

    task: str
    community: str
    kind: str
    due: datetime


async def overdue_tasks(conn: AsyncConnection, code: str, bounds: t.DayBounds) -> list[OverdueTask]:
    """Tasks under ``code`` open at the day's end and due before its reference, soonest due
    first."""
    s = task_spans.c
    rows = await conn.execute(
        select(s.task, s.unit, s.kind, s.due)
        .where(
            _under([code]),
            s.opened_at < bounds.end,
            _open_at_end(bounds),
            s.due < bounds.reference,
        )
        .order_by(s.due, s.task)
    )
    return [OverdueTask(task, unit, kind, due) for task, unit, kind, due in rows.all()]


def by_street(tasks: Iterable[OverdueTask], street_length: int) -> dict[str, list[OverdueTask]]:
    """Overdue tasks grouped by the street of their community."""
    grouped: dict[str, list[OverdueTask]] = defaultdict(list)
    for task in tasks:
        grouped[task.community[:street_length]].append(task)
    return dict(grouped)
