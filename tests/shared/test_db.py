"""PostgreSQL engines plan each statement for its parameters (no stale generic plans)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, select, text

from zhibao_shared.db import make_engine

pytestmark = pytest.mark.integration

keys = Table("keys", MetaData(), Column("key", String(64), primary_key=True))


async def test_a_statement_run_many_times_is_never_given_a_generic_plan(postgres_url: str) -> None:
    """A generic plan made while a table is empty stays a sequential scan as it grows."""
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(keys.metadata.create_all)
            for n in range(10):
                await conn.execute(select(keys.c.key).where(keys.c.key.in_([f"k{n}", "x"])))
            plans = await conn.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE statement LIKE '%FROM keys%'"
                    " AND statement NOT LIKE '%pg_prepared_statements%'"
                )
            )
            generic, custom = plans.one()
    finally:
        await engine.dispose()
    assert custom >= 10
    assert generic == 0
