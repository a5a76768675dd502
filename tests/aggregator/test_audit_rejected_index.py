"""The audit trail's rejection index holds the rejected rows alone (migration 0016), on
SQLite and PostgreSQL: rows stored before the upgrade are counted after it, and the
rejection counts read through the index."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.aggregator.test_audit_projection import (
    DAY_1,
    DAY_2,
    A,
    B,
    _at,
    _event,
    _project,
    _publish_trail,
    _submission,
)
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.storage.audit import RejectedCount, rejected_events, rejected_query
from zhibao_shared.db import run_migrations
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import TokenStore

pytestmark = pytest.mark.integration

BEFORE = "0015_counters_by_unit_day"
INDEX = "ix_audit_trail_rejected"


def _definition(sync: Connection) -> str:
    """The index's definition as the database states it."""
    if sync.dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = :name"
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    return str(sync.execute(text(query), {"name": INDEX}).scalar_one()).upper()


def _plan(sync: Connection) -> str:
    """The plan of a rejection count (PostgreSQL told to avoid scanning the table whenever
    an index can serve: the test table is tiny)."""
    if sync.dialect.name == "sqlite":
        explain = "EXPLAIN QUERY PLAN "
    else:
        sync.execute(text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN "
    query = rejected_query("640106", DAY_1, DAY_2)
    compiled = query.compile(sync, compile_kwargs={"literal_binds": True})
    rows = sync.execute(text(explain + str(compiled)))
    return " ".join(str(part) for row in rows for part in row)


async def _run(conn: AsyncConnection) -> tuple[str, str]:
    return await conn.run_sync(_definition), await conn.run_sync(_plan)


async def test_rejections_stored_before_the_upgrade_are_counted_through_the_new_index(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine, database: str
) -> None:
    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE)
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens)
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
        async with engine.connect() as conn:
            definition, _plan_before = await _run(conn)
        assert "WHERE" not in definition and "OUTCOME" in definition

        await migrate(database)
        later = _submission(
            _at(DAY_2, 9), [_event(7, B, "rejected", "invalid"), _event(8, A, "accepted")]
        )
        await _publish_trail(nats_server.url, tmp_path, tokens, [later])
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        definition, plan = await _run(conn)
        counted = await rejected_events(conn, "640106", DAY_1, DAY_2)
        nothing = await rejected_events(conn, "640106", DAY_2 + timedelta(days=1), DAY_2)
    assert "WHERE" in definition and "'REJECTED'" in definition, definition
    assert INDEX in plan, plan
    assert counted == [
        RejectedCount(A, DAY_1, "invalid", 2),
        RejectedCount(A, DAY_2, "unknown_unit", 1),
        RejectedCount(B, DAY_1, "invalid", 1),
        RejectedCount(B, DAY_2, "invalid", 1),
    ]
    assert nothing == []

    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE)
    async with engine.connect() as conn:
        definition, _plan_after = await _run(conn)
    assert "WHERE" not in definition
