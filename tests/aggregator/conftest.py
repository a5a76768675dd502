"""Fixtures of the aggregator tests: settings and a migrated database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres import both_backends
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine, sqlite_url


@pytest.fixture
def settings(tmp_path: Path) -> AggregatorSettings:
    """Aggregator settings isolated in a temporary data directory."""
    return AggregatorSettings(data_dir=tmp_path / "data", _env_file=None)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database."""
    url = sqlite_url(tmp_path, "aggregator-test")
    await migrate(url)
    engine = make_engine(url)
    yield engine
    await engine.dispose()


database = both_backends("aggregator")


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    """The migrated database of either backend."""
    await migrate(database)
    made = make_engine(database)
    yield made
    await made.dispose()
