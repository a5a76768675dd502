"""Reads from counter totals: a database counted before the totals existed reads the same
after the migration that adds them, and a rebuild's deferred indexes always come back."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import Scenario, compare, generate, truth
from tests.aggregator.harness import read_all
from zhibao_aggregator.bootstrap import rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.replay import READ_INDEXES, read_indexes_deferred
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import run_migrations


async def _apply_scenario(engine: AsyncEngine, settings: AggregatorSettings) -> Scenario:
    scenario = generate(18, screenings=400, persons=60, isolated=40)
    handler = ApplyBatch(engine, rules(settings), lambda _changed: None)
    events = scenario.unique
    for start in range(0, len(events), 150):
        await handler(
            [Delivery(e, "s", start + n, 1) for n, e in enumerate(events[start : start + 150])]
        )
    return scenario


async def test_figures_counted_before_the_totals_existed_read_the_same_after_the_migration(
    engine: AsyncEngine, database: str, settings: AggregatorSettings
) -> None:
    scenario = await _apply_scenario(engine, settings)
    before = await read_all(engine, settings, scenario.days)
    expected = truth(scenario)
    assert any(f.get("current_suspected") for f in expected.values())  # stocks are in play
    # as the database stood at 0010, totals not kept
    await run_migrations(database, "zhibao_aggregator", downgrade_to="0010_place_counters")
    await migrate(database)
    after = await read_all(engine, settings, scenario.days)
    assert after == before
    assert compare(after, expected) == []


async def test_a_rebuild_that_fails_still_gets_its_read_indexes_back(engine: AsyncEngine) -> None:
    names = {str(index.name) for index in READ_INDEXES}
    assert "ix_counters_unit_metric_day" in names

    def indexes(sync: object) -> set[str]:
        inspector = inspect(sync)
        tables = {str(index.table.name) for index in READ_INDEXES if index.table is not None}
        return {str(i["name"]) for t in tables for i in inspector.get_indexes(t)}

    async def present() -> set[str]:
        async with engine.connect() as conn:
            return await conn.run_sync(indexes) & names

    assert await present() == names
    try:
        async with read_indexes_deferred(engine):
            assert await present() == set()
            raise RuntimeError("the replay failed")
    except RuntimeError:
        pass
    assert await present() == names
