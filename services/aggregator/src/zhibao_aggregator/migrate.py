"""Schema migrations, run as an explicit step (never at import or start-up)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect

from zhibao_shared.db import make_engine

TABLES = ("counters", "applied_events", "case_facts", "isolation_facts", "daily_reports")


def _config(connection: Connection) -> Config:
    config = Config()
    location = resources.files("zhibao_aggregator").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema (Alembic ``upgrade head``)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def _has_schema(connection: Connection) -> bool:
    return inspect(connection).has_table("applied_events")


async def schema_ready(url: str) -> bool:
    """True when the schema exists (the service refuses to start without it)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_has_schema)
    finally:
        await engine.dispose()
