"""Plain-value INSERTs run as the driver's own executemany.

SQLAlchemy's per-row parameter processing cost more than the database's work on the
consumers' hot paths (measured: ~30% of an aggregator batch's CPU), so the rows
written for every event (counters, dedup keys, the alerts service's event records,
the audit trail's rows) go through :func:`insert_many` instead. Dates and times are
bound as the driver takes them (:func:`day_binder`, :func:`moment_binder`), stored
exactly as SQLAlchemy's own types store them, so either can read what the other wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import Date, DateTime, Table, TypeDecorator
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_T = TypeVar("_T")

#: Rows per statement (bounds a statement's parameters on both backends).
CHUNK = 500


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

    @classmethod
    def of(cls, table: Table, conflict: str = "") -> Insert:
        """An insert of every column of ``table``, in the table's order (as
        :func:`bind_rows` binds them)."""
        return cls(table.name, tuple(column.name for column in table.columns), conflict)


def adding(table: Table) -> str:
    """The ``ON CONFLICT`` clause that adds ``value`` to an existing row of ``table``."""
    keys = ", ".join(column.name for column in table.primary_key.columns)
    return f" ON CONFLICT ({keys}) DO UPDATE SET value = {table.name}.value + excluded.value"


def ignoring(table: Table) -> str:
    """The ``ON CONFLICT`` clause that keeps an existing row of ``table`` as it is."""
    keys = ", ".join(column.name for column in table.primary_key.columns)
    return f" ON CONFLICT ({keys}) DO NOTHING"


async def insert_many(conn: AsyncConnection, insert: Insert, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``insert.columns`` order), ``CHUNK`` rows a statement."""
    sql = insert.sql(conn.dialect.name)
    for start in range(0, len(rows), CHUNK):
        await conn.exec_driver_sql(sql, rows[start : start + CHUNK])


def bind_rows(
    conn: AsyncConnection, table: Table, rows: Iterable[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """``rows`` (by column name; a missing name is NULL) as tuples for
    :meth:`Insert.of` ``(table)``, each moment and day bound as its column's type
    stores it on ``conn``'s backend."""
    names = [column.name for column in table.columns]
    binders = _binders(conn, table)
    bound: list[tuple[Any, ...]] = []
    for row in rows:
        value = list(map(row.get, names))
        for n, bind in binders:
            if value[n] is not None:
                value[n] = bind(value[n])
        bound.append(tuple(value))
    return bound


def _binders(conn: AsyncConnection, table: Table) -> list[tuple[int, Callable[[Any], Any]]]:
    """The positions of ``table``'s moment and day columns, with their binders."""
    moment, day = moment_binder(conn), day_binder(conn)
    binders: list[tuple[int, Callable[[Any], Any]]] = []
    for n, column in enumerate(table.columns):
        kind = column.type
        if isinstance(kind, TypeDecorator):
            kind = kind.impl_instance
        if isinstance(kind, DateTime):
            binders.append((n, moment))
        elif isinstance(kind, Date):
            binders.append((n, day))
    return binders


def day_binder(conn: AsyncConnection | AsyncEngine) -> Callable[[date], date | str]:
    """How the driver of ``conn`` (or of an engine's connections) takes a ``date``: itself
    (asyncpg) or ISO text (SQLite, whose driver's date adapter is deprecated)."""
    if conn.dialect.name == "postgresql":
        return _as_is
    return date.isoformat


def moment_binder(conn: AsyncConnection) -> Callable[[datetime], datetime | str]:
    """How ``conn``'s driver takes an aware moment of a ``UtcDateTime`` column: itself
    (asyncpg) or the UTC text SQLAlchemy's SQLite ``DATETIME`` stores."""
    if conn.dialect.name == "postgresql":
        return _as_is
    return _sqlite_moment


def _sqlite_moment(at: datetime) -> str:
    # isoformat is several times faster than strftime (and than replace(tzinfo=None));
    # the first 26 characters leave out the offset, +00:00 in UTC
    return at.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _as_is(value: _T) -> _T:
    return value
