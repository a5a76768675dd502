"""The counters keyed by (unit, day, metric): a database counted under the old key
(unit, metric, day) keeps every row through the migration and back, and reads exact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import read_all
from zhibao_aggregator.bootstrap import rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.tables import COUNTERS_BY_METRIC, counters
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import run_migrations

BEFORE = "0014_audit_event_source_length"


def _layout(sync: Any) -> tuple[list[str], set[str], bool]:
    """The counters' key columns in order, their indexes, and whether SQLite keeps a rowid."""
    inspector = inspect(sync)
    key = list(inspector.get_pk_constraint("counters")["constrained_columns"])
    indexes = {str(i["name"]) for i in inspector.get_indexes("counters")}
    rowid = True
    if sync.dialect.name == "sqlite":
        sql = sync.execute(text("SELECT sql FROM sqlite_master WHERE name = 'counters'")).scalar()
        rowid = "WITHOUT ROWID" not in str(sql).upper()
    return key, indexes, rowid


async def _layout_of(engine: AsyncEngine) -> tuple[list[str], set[str], bool]:
    async with engine.connect() as conn:
        return await conn.run_sync(_layout)


async def _rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(counters).order_by(counters.c.unit, counters.c.metric, counters.c.day)
        )
        return [tuple(row) for row in found.all()]


async def test_counters_counted_under_the_old_key_are_kept_re_keyed_and_back(
    engine: AsyncEngine, database: str, settings: AggregatorSettings
) -> None:
    scenario = generate(23, screenings=400, persons=60, isolated=40)
    handler = ApplyBatch(engine, rules(settings), lambda _changed: None)
    events = scenario.unique
    # counted under the old key, as a database of 0014 was
    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE)
    assert await _layout_of(engine) == (["unit", "metric", "day"], {"ix_counters_unit_day"}, True)
    for start in range(0, len(events), 150):
        batch = events[start : start + 150]
        await handler([Delivery(e, "s", start + n, 1) for n, e in enumerate(batch)])
    counted = await _rows(engine)
    assert counted

    await migrate(database)
    sqlite = engine.dialect.name == "sqlite"
    assert await _layout_of(engine) == (
        ["unit", "day", "metric"],
        {"ix_counters_unit_metric_day"},
        not sqlite,  # on SQLite the key is the table
    )
    assert await _rows(engine) == counted
    assert compare(await read_all(engine, settings, scenario.days), truth(scenario)) == []

    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE)
    assert await _layout_of(engine) == (["unit", "metric", "day"], {"ix_counters_unit_day"}, True)
    assert await _rows(engine) == counted


async def test_a_database_left_by_an_interrupted_rebuild_or_copy_still_migrates(
    engine: AsyncEngine, database: str
) -> None:
    """An interrupted rebuild leaves its read indexes dropped, and its remedy (``rebuild
    --force``) migrates first; on SQLite a stopped copy leaves its new table behind."""
    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE)
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_counters_unit_day"))
        if engine.dialect.name == "sqlite":
            await conn.execute(text("CREATE TABLE counters_rekeyed (unit VARCHAR(12))"))
    await migrate(database)
    assert (await _layout_of(engine))[:2] == (["unit", "day", "metric"], {COUNTERS_BY_METRIC.name})
