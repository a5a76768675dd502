"""Plain-value INSERTs run as the driver's own executemany.

SQLAlchemy's per-row parameter processing cost more than the database's work on the
writer's hot path (measured: ~30% of a live batch's CPU), so the counters, the place
counters and the dedup keys are written through :func:`insert_many` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.storage.facts import CHUNK


@dataclass(frozen=True)
class Insert:
    """An INSERT of plain values (strings, integers; dates as the driver takes them)."""

    table: str
    columns: tuple[str, ...]
    #: ``ON CONFLICT`` clause, or "" for a plain insert.
    conflict: str = ""

    def sql(self, dialect_name: str) -> str:
        """The statement in the driver's parameter style (``?`` or ``$n``)."""
        if dialect_name == "postgresql":
            marks = ", ".join(f"${n}" for n in range(1, len(self.columns) + 1))
        else:
            marks = ", ".join("?" for _ in self.columns)
        columns = ", ".join(self.columns)
        # Names from the schema's metadata, never from input; values are bound parameters.
        insert = f"INSERT INTO {self.table} ({columns}) VALUES ({marks})"  # noqa: S608
        return insert + self.conflict


def adding(table: Table) -> str:
    """The ``ON CONFLICT`` clause that adds ``value`` to an existing row of ``table``."""
    keys = ", ".join(column.name for column in table.primary_key.columns)
    return f" ON CONFLICT ({keys}) DO UPDATE SET value = {table.name}.value + excluded.value"


async def insert_many(conn: AsyncConnection, insert: Insert, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``insert.columns`` order), ``CHUNK`` rows a statement."""
    sql = insert.sql(conn.dialect.name)
    for start in range(0, len(rows), CHUNK):
        await conn.exec_driver_sql(sql, rows[start : start + CHUNK])


def day_binder(conn: AsyncConnection) -> Callable[[date], date | str]:
    """How ``conn``'s driver takes a ``date``: itself (asyncpg) or ISO text (SQLite, whose
    driver's date adapter is deprecated)."""
    if conn.dialect.name == "postgresql":
        return _as_is
    return date.isoformat


def _as_is(day: date) -> date:
    return day
