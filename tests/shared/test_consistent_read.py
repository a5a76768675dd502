"""A page read in several statements sees one state of the database, never a commit
half-way (the alert page once showed a closed task's new state beside its old summary)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres import both_backends
from zhibao_shared.db import consistent_read, make_engine

pytestmark = pytest.mark.integration

database = both_backends("shared")

metadata = MetaData()
summaries = Table(
    "summaries", metadata, Column("id", Integer, primary_key=True), Column("text", String)
)
tasks = Table("tasks", metadata, Column("id", Integer, primary_key=True), Column("state", String))


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(summaries.insert(), [{"id": 1, "text": "2 tasks open"}])
        await conn.execute(tasks.insert(), [{"id": 1, "state": "overdue"}])
    yield engine
    await engine.dispose()


async def _close_task(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(summaries).values(text="1 task open"))
        await conn.execute(update(tasks).values(state="done"))


async def test_a_commit_between_two_reads_is_not_seen_by_the_second(engine: AsyncEngine) -> None:
    async with consistent_read(engine) as conn:
        summary = (await conn.execute(select(summaries.c.text))).scalar_one()
        await _close_task(engine)
        state = (await conn.execute(select(tasks.c.state))).scalar_one()
    assert (summary, state) == ("2 tasks open", "overdue")


async def test_the_next_read_sees_the_commit(engine: AsyncEngine) -> None:
    async with consistent_read(engine) as conn:
        await conn.execute(select(summaries.c.text))
    await _close_task(engine)
    async with consistent_read(engine) as conn:
        summary = (await conn.execute(select(summaries.c.text))).scalar_one()
        state = (await conn.execute(select(tasks.c.state))).scalar_one()
    assert (summary, state) == ("1 task open", "done")
