"""A unit's task figures and overdue list hold the communities under it and no others,
whatever its code ends in (the queries take the communities under a unit as a range of
codes, searched in the index of the spans' units)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.tasks import DayBounds
from zhibao_aggregator.storage.task_queries import _codes_under, overdue_tasks, task_figures
from zhibao_aggregator.storage.task_tables import task_spans

#: Communities around unit boundaries: a street ending in 9 and its neighbours, a
#: district ending in 9 and the next one, each with its highest and lowest codes.
COMMUNITIES = (
    "640106008999",
    "640106009001",
    "640106009999",
    "640106010001",
    "640109001001",
    "640109999999",
    "640110000001",
    "640199999999",
    "640200000001",
    "640107",  # a shorter code, inside the range of 640106999 though not under it
)
#: Open tasks under each unit, asked of the query one unit at a time.
EXPECTED = {
    "640106009": 2,
    "640106008": 1,
    "640106010": 1,
    "640109": 2,
    "640110": 1,
    "6401": 9,
    "640107": 1,
    "640106999": 0,
    "640199": 1,
    "640106": 4,
    "640106009001": 1,
}


def _spans(now: datetime, due: datetime) -> list[dict[str, object]]:
    """One open task in each of COMMUNITIES, due at ``due``."""
    return [
        {
            "task": f"t{n}",
            "number": 0,
            "unit": community,
            "kind": "visit",
            "due": due,
            "opened_at": now - timedelta(hours=1),
            "closed_at": None,
            "outcome": None,
            "issued_at": now - timedelta(hours=1),
        }
        for n, community in enumerate(COMMUNITIES)
    ]


async def test_overdue_tasks_per_unit_at_codes_ending_in_nine(engine: AsyncEngine) -> None:
    now = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(task_spans), _spans(now, due=now - timedelta(hours=1)))
    bounds = DayBounds.of(now - timedelta(hours=4), now + timedelta(hours=20), now)
    async with engine.connect() as conn:
        listed = {unit: await overdue_tasks(conn, unit, bounds) for unit in EXPECTED}
    assert {unit: len(tasks) for unit, tasks in listed.items()} == EXPECTED
    for unit, tasks in listed.items():
        assert all(task.community.startswith(unit) for task in tasks), unit


async def test_the_overdue_list_is_searched_in_the_unit_index(
    sqlite_engine: AsyncEngine,
) -> None:
    """A street's overdue list does not read every task of the city (on SQLite, the
    embedded default, a LIKE on a bound pattern scanned the whole table on each read)."""
    now = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    bounds = DayBounds.of(now - timedelta(hours=4), now + timedelta(hours=20), now)
    executed: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    event.listen(sqlite_engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sqlite_engine.connect() as conn:
            await overdue_tasks(conn, "640106009", bounds)
    finally:
        event.remove(sqlite_engine.sync_engine, "before_cursor_execute", record)
    (statement, parameters), *_ = [e for e in executed if "task_spans" in e[0]]
    async with sqlite_engine.connect() as conn:
        plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        steps = [str(row[-1]) for row in plan]
    assert any("ix_task_spans_unit (unit>? AND unit<?)" in step for step in steps), steps


async def test_open_tasks_per_unit_at_codes_ending_in_nine(engine: AsyncEngine) -> None:
    now = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    rows = _spans(now, due=now + timedelta(days=1))
    async with engine.begin() as conn:
        await conn.execute(insert(task_spans), rows)
    bounds = DayBounds.of(now - timedelta(hours=4), now + timedelta(hours=20), now)
    found = {}
    async with engine.connect() as conn:
        for unit in EXPECTED:  # alone, so the query's own selection decides
            found[unit] = (await task_figures(conn, [unit], bounds))[unit]["tasks_open"]
    assert found == EXPECTED


def test_a_unit_s_codes_are_a_range_up_to_the_next_code() -> None:
    assert _codes_under("640106009") == ("640106009", "640106010")
    assert _codes_under("640199") == ("640199", "640200")
    assert _codes_under("64") == ("64", "65")
    with pytest.raises(ValueError, match="not a unit code"):
        _codes_under("99")
