"""Task figures of past days, read from the database: what was open at each day's end, where
it was then, and what closed that day (applied in any order, twice)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.tasks_support import message, task_id
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.task_writer import apply_task_messages
from zhibao_shared.task_events import TaskEvent, TaskState

A, B, STREET = "640106001001", "640106001002", "640106001"
#: 2026-11-01 10:00 in Asia/Shanghai
T0 = datetime(2026, 11, 1, 2, tzinfo=UTC)
DUE = T0 + timedelta(days=1)  # 11-02 10:00
FIGURES = ("tasks_open", "tasks_overdue", "tasks_done", "tasks_unreachable")


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


MESSAGES = [
    message(task_id(1), TaskEvent.ISSUED, TaskState.ISSUED, A, _at(0), DUE),
    message(task_id(1), TaskEvent.CHANGED, TaskState.TRANSFERRED, B, _at(4), DUE, from_unit=A),
    message(task_id(1), TaskEvent.OVERDUE, TaskState.ISSUED, B, _at(24), DUE),
    message(task_id(1), TaskEvent.CHANGED, TaskState.DONE, B, _at(47), DUE),  # 11-03 09:00
    message(task_id(2), TaskEvent.ISSUED, TaskState.ISSUED, A, _at(1), DUE),
    message(task_id(2), TaskEvent.CHANGED, TaskState.UNREACHABLE, A, _at(26), DUE),  # 11-02
]


async def _figures(engine: AsyncEngine, settings: AggregatorSettings) -> dict[Any, Any]:
    read = reader(settings, engine)
    out = {}
    for day in (date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)):
        for code in (A, B, STREET):
            figures = await read.figures(code, day)
            out[(code, day.day)] = (
                *(figures[name] for name in FIGURES),
                figures["median_hours_to_done"],
            )
    return out


EXPECTED = {
    # 11-01: both issued in A, task 1 moved to B in the afternoon
    (A, 1): (1, 0, 0, 0, None),
    (B, 1): (1, 0, 0, 0, None),
    (STREET, 1): (2, 0, 0, 0, None),
    # 11-02: task 2 unreachable; task 1 still open in B past its due time
    (A, 2): (0, 0, 0, 1, None),
    (B, 2): (1, 1, 0, 0, None),
    (STREET, 2): (1, 1, 0, 1, None),
    # 11-03: task 1 done, 47 hours after it was issued
    (A, 3): (0, 0, 0, 0, None),
    (B, 3): (0, 0, 1, 0, 47.0),
    (STREET, 3): (0, 0, 1, 0, 47.0),
}


async def test_past_days_in_any_order_and_twice(
    engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    calendar = Calendar.named(settings.timezone)
    today = date(2026, 12, 1)
    for batch in (MESSAGES[3:], MESSAGES[:3], MESSAGES):  # results first, then all again
        async with engine.begin() as conn:
            applied = await apply_task_messages(conn, batch, calendar, today)
        if batch is MESSAGES:
            assert (applied.applied, applied.duplicates) == (0, len(MESSAGES))
    assert await _figures(engine, settings) == EXPECTED
