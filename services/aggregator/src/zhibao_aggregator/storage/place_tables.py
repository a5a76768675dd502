"""The per-place counters' table (changed only through Alembic migrations)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, String, Table

from zhibao_aggregator.storage.tables import metadata

#: Counters per registered place (compound, building or grid id) and metric and day, as
#: ``counters`` per unit; ``unregistered`` is kept under the community's code.
place_counters = Table(
    "place_counters",
    metadata,
    Column("place", String(32), primary_key=True),
    Column("metric", String(48), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("value", BigInteger, nullable=False),
)
