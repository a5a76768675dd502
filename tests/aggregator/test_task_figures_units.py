"""A unit's task figures count the communities under it and no others, whatever its code
ends in (the query takes the communities under a unit as a range of codes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.tasks import DayBounds
from zhibao_aggregator.storage.task_queries import task_figures
from zhibao_aggregator.storage.task_tables import task_spans

#: Communities around unit boundaries: a street ending in 9 and its neighbours, a
#: district ending in 9 and the next one.
COMMUNITIES = (
    "640106008999",
    "640106009001",
    "640106009999",
    "640106010001",
    "640109001001",
    "640110001001",
)


async def test_open_tasks_per_unit_at_codes_ending_in_nine(engine: AsyncEngine) -> None:
    now = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    rows = [
        {
            "task": f"t{n}",
            "number": 0,
            "unit": community,
            "kind": "visit",
            "due": now + timedelta(days=1),
            "opened_at": now - timedelta(hours=1),
            "closed_at": None,
            "outcome": None,
            "issued_at": now - timedelta(hours=1),
        }
        for n, community in enumerate(COMMUNITIES)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(task_spans), rows)
    bounds = DayBounds.of(now - timedelta(hours=4), now + timedelta(hours=20), now)
    units = ["640106009", "640106008", "640106010", "640109", "640106", "6401", "640106009001"]
    async with engine.connect() as conn:
        figures = await task_figures(conn, units, bounds)
    assert {unit: figures[unit]["tasks_open"] for unit in units} == {
        "640106009": 2,
        "640106008": 1,
        "640106010": 1,
        "640109": 1,
        "640106": 4,
        "6401": 6,
        "640106009001": 1,
    }
