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
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import tasks as t
from zhibao_aggregator.storage.facts import as_utc
from zhibao_aggregator.storage.task_tables import task_spans
from zhibao_shared.db import UtcDateTime
from zhibao_shared.task_events import TaskState

Figures = dict[str, int | float | None]


class _Bounds(Protocol):
    """A day's moments: :class:`tasks.DayBounds`, or bind parameters standing for them."""

    @property
    def start(self) -> Any: ...
    @property
    def end(self) -> Any: ...
    @property
    def reference(self) -> Any: ...


@dataclass(frozen=True)
class _BoundParameters:
    start: Any
    end: Any
    reference: Any


def _roots(codes: Iterable[str]) -> list[str]:
    """The codes that are not under another listed code (their prefixes cover the rest)."""
    ordered = sorted(set(codes), key=len)
    roots: list[str] = []
    for code in ordered:
        if not any(code.startswith(root) for root in roots):
            roots.append(code)
    return roots


def _codes_under(code: str) -> tuple[str, str]:
    """The codes that start with a unit's ``code``, as a range [code, following code).

    Unlike ``LIKE 'code%'``, a range is searched in the index of the spans' units, and
    SQLite prepares a statement again at every run when a LIKE pattern is a bound
    parameter (0.2 ms for the day's figures, more than the query on an empty table).
    Every code that starts with ``code`` lies in the range; a shorter code may too (the
    range of 640106999 holds 640107), so the caller keeps only the units under ``code``.
    Unit codes are ASCII digits and never all nines (provinces are numbered 11 to 82).
    """
    if not (code.isascii() and code.isdigit()) or set(code) == {"9"}:
        raise ValueError(f"not a unit code with units under it: {code!r}")
    return code, str(int(code) + 1).zfill(len(code))


def _open_at_end(bounds: _Bounds) -> ColumnElement[bool]:
    s = task_spans.c
    return or_(s.closed_at.is_(None), s.closed_at >= bounds.end)


def _relevant(bounds: _Bounds) -> ColumnElement[bool]:
    s = task_spans.c
    return and_(s.opened_at < bounds.end, or_(s.closed_at.is_(None), s.closed_at >= bounds.start))


#: Constants written into the statements: every bound parameter costs each run.
_ONE: ColumnElement[int] = literal_column("1", Integer)
_ZERO: ColumnElement[int] = literal_column("0", Integer)


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, _ONE), else_=_ZERO)), _ZERO)


def _closed_as(outcome: TaskState, bounds: _Bounds) -> ColumnElement[bool]:
    s = task_spans.c
    return and_(s.outcome == outcome.value, s.closed_at < bounds.end)


async def task_figures(
    conn: AsyncConnection, codes: list[str], bounds: t.DayBounds
) -> dict[str, Figures]:
    """The task figures of each unit in ``codes`` for the day of ``bounds``.

    One round trip: the counts per community and the durations of the tasks done
    that day, from a statement built once per number of prefixes (a read binds them).
    """
    if not codes:
        return {}
    roots = _roots(codes)
    params: dict[str, object] = {}
    for i, root in enumerate(roots):
        params[f"from{i}"], params[f"below{i}"] = _codes_under(root)
    params |= {"start": bounds.start, "end": bounds.end, "reference": bounds.reference}
    rows = (await conn.execute(_figures_statement(len(roots)), params)).all()
    per_community = [
        (unit, [int(v) for v in values]) for part, unit, *values, _k, _i, _c in rows if part == "n"
    ]
    hours = [
        (unit, kind, (as_utc(closed) - as_utc(issued)).total_seconds() / 3600)
        for part, unit, *_counts, kind, issued, closed in rows
        if part == "h"
    ]
    out: dict[str, Figures] = {}
    for code in codes:  # the rows hold the units of every range: each code takes its own
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


@cache
def _figures_statement(roots: int) -> CompoundSelect[Any]:
    """Per community: open at the day's end, overdue, done and unreachable during it, and
    the needs open and overdue (part ``n``); and each task done during the day with its
    kind, issue and done times (part ``h``). Communities under any of ``roots`` units
    (``from0`` <= community < ``below0``, ...: see :func:`_codes_under`)."""
    s = task_spans.c
    under = or_(
        *(
            and_(
                s.unit >= bindparam(f"from{i}", type_=String),
                s.unit < bindparam(f"below{i}", type_=String),
            )
            for i in range(roots)
        )
    )
    start, end = bindparam("start", type_=UtcDateTime), bindparam("end", type_=UtcDateTime)
    bounds = _BoundParameters(start, end, bindparam("reference", type_=UtcDateTime))
    open_end = _open_at_end(bounds)
    need = s.kind.startswith(t.NEED_KIND_PREFIX, autoescape=True)
    none = null().label("none")
    counts = (
        select(
            literal_column("'n'"),
            s.unit,
            _count(open_end),
            _count(and_(open_end, s.due < bounds.reference)),
            _count(_closed_as(TaskState.DONE, bounds)),
            _count(_closed_as(TaskState.UNREACHABLE, bounds)),
            _count(and_(need, open_end)),
            _count(and_(need, open_end, s.due < bounds.reference)),
            cast(none, String),
            cast(none, UtcDateTime),
            cast(none, UtcDateTime),
        )
        .where(under, _relevant(bounds))
        .group_by(s.unit)
    )
    done = select(
        literal_column("'h'"),
        s.unit,
        _ZERO,
        _ZERO,
        _ZERO,
        _ZERO,
        _ZERO,
        _ZERO,
        s.kind,
        s.issued_at,
        s.closed_at,
    ).where(
        under,
        s.outcome == TaskState.DONE.value,
        s.closed_at >= start,
        s.closed_at < end,
        s.issued_at.is_not(None),
    )
    return union_all(counts, done)


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
    first, below = _codes_under(code)
    rows = await conn.execute(
        select(s.task, s.unit, s.kind, s.due)
        .where(
            s.unit >= first,
            s.unit < below,
            s.opened_at < bounds.end,
            _open_at_end(bounds),
            s.due < bounds.reference,
        )
        .order_by(s.due, s.task)
    )
    return [
        OverdueTask(task, unit, kind, due)
        for task, unit, kind, due in rows.all()
        if unit.startswith(code)  # the range may hold a shorter code (see _codes_under)
    ]


def by_street(tasks: Iterable[OverdueTask], street_length: int) -> dict[str, list[OverdueTask]]:
    """Overdue tasks grouped by the street of their community."""
    grouped: dict[str, list[OverdueTask]] = defaultdict(list)
    for task in tasks:
        grouped[task.community[:street_length]].append(task)
    return dict(grouped)
