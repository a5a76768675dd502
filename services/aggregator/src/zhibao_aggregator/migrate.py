"""Schema migrations, run as an explicit step (never at import or start-up)."""

from __future__ import annotations

from zhibao_shared.db import run_migrations

#: Where the migrations live (``<package>/migrations``).
PACKAGE = "zhibao_aggregator"


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema (Alembic ``upgrade heads``)."""
    await run_migrations(url, PACKAGE)
