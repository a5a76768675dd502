"""A unit's task figures count the communities under it and no others, whatever its code
ends in (the query takes the communities under a unit as a range of codes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.tasks import DayBounds
from zhibao_aggregator.storage.task_queries import _codes_under, task_figures
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
)
#: Open tasks under each unit, asked of the query one unit at a time.
EXPECTED = {
    "640106009": 2,
    "640106008": 1,
    "640106010": 1,
    "640109": 2,
    "640110": 1,
    "6401": 8,
    "640199": 1,
    "640106": 4,
    "640106009001": 1,
}


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
