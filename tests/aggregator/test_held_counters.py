"""A rebuild's held counter changes, written in runs of a few units at a time, count
exactly what the same events count live: the streets, districts and the city that
several runs share add up in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import read_all
from zhibao_aggregator.bootstrap import rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import HeldCounters
from zhibao_shared.consumer import Delivery


async def test_held_changes_written_a_few_units_at_a_time_count_exactly(
    engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    scenario = generate(23, screenings=500, persons=60, isolated=30)
    # Runs of 3 keys: every community (and place) a run of its own, so each street,
    # district and the city is written by many runs.
    held = HeldCounters(limit=10_000_000, run=3)
    handler = ApplyBatch(engine, rules(settings), lambda _changed: None, held)
    events = scenario.unique
    for start in range(0, len(events), 120):
        batch = events[start : start + 120]
        await handler([Delivery(e, "s", start + n, 1) for n, e in enumerate(batch)])
    await handler.write_held()
    handler.close()
    assert compare(await read_all(engine, settings, scenario.days), truth(scenario)) == []
