"""A rebuild's held counter changes, written in runs of a few units at a time, count
exactly what the same events count live: the streets, districts and the city that
several runs share add up in the database; and they follow the transactions they were
made in (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import read_all
from zhibao_aggregator.bootstrap import rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.tables import counters
from zhibao_aggregator.storage.writer import HeldCounters
from zhibao_shared.consumer import Delivery


@pytest.mark.parametrize("limit", [10_000_000, 40], ids=["held to the end", "written often"])
async def test_held_changes_written_a_few_units_at_a_time_count_exactly(
    engine: AsyncEngine, settings: AggregatorSettings, limit: int
) -> None:
    scenario = generate(23, screenings=500, persons=60, isolated=30)
    # Runs of 3 keys: every community (and place) a run of its own, so each street,
    # district and the city is written by many runs; with a limit of 40 keys, also by
    # the batches that reach it.
    held = HeldCounters(limit=limit, run=3)
    handler = ApplyBatch(engine, rules(settings), lambda _changed: None, held)
    events = scenario.unique
    for start in range(0, len(events), 120):
        batch = events[start : start + 120]
        await handler([Delivery(e, "s", start + n, 1) for n, e in enumerate(batch)])
    await handler.write_held()
    handler.close()
    assert compare(await read_all(engine, settings, scenario.days), truth(scenario)) == []


def _screenings(community: str, day: date, count: int) -> Counter[tuple[str, date, str]]:
    return Counter({(community, day, "screenings"): count})


async def _street_screenings(engine: AsyncEngine, street: str, day: date) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(counters.c.value).where(
                counters.c.unit == street,
                counters.c.day == day,
                counters.c.metric == "screenings",
            )
        )
    return int(value or 0)


async def test_held_changes_follow_the_transactions_they_were_made_in(
    engine: AsyncEngine,
) -> None:
    """A batch whose transaction failed comes back: its changes are held once, not
    twice. A write of the held changes that failed leaves them held for the next."""
    day = date(2026, 11, 30)
    held = HeldCounters(limit=10_000_000, run=1)
    held.hold(_screenings("640106001001", day, 5), Counter())
    held.settle(committed=False)  # the batch's transaction failed ...
    held.hold(_screenings("640106001001", day, 5), Counter())
    held.settle(committed=True)  # ... and its redelivery committed
    held.hold(_screenings("640106001002", day, 2), Counter())
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:  # the batch that fills the held keys ...
            await held.write(conn)
            raise RuntimeError("the transaction failed after the write")
    held.settle(committed=False)  # ... rolled back, with what it wrote
    assert await _street_screenings(engine, "640106001", day) == 0
    held.hold(_screenings("640106001002", day, 2), Counter())  # it comes back
    async with engine.begin() as conn:
        await held.write(conn)
    held.settle(committed=True)
    assert await _street_screenings(engine, "640106001", day) == 7
    async with engine.begin() as conn:  # nothing is held twice
        await held.write(conn)
    held.settle(committed=True)
    assert await _street_screenings(engine, "640106001", day) == 7
