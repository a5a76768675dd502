"""Schema migrations, run as an explicit step (never at import or start-up)."""

from __future__ import annotations

from zhibao_shared.db import has_table, run_migrations


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema (Alembic ``upgrade head``)."""
    await run_migrations(url, "zhibao_aggregator")


async def schema_ready(url: str) -> bool:
    """True when the schema exists (the service refuses to start without it)."""
    return await has_table(url, "applied_events")
