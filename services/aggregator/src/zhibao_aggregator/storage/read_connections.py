"""Connections for the rollup reads: the async engine's, or for SQLite a direct one.

aiosqlite runs every call in its own thread: a SELECT through SQLAlchemy is four
thread hops (cursor, execute, fetch, close), and a rollup read of five statements
paid about twenty of them. Measured in process (bench/aggregator_harness.py), the
hops cost more than the indexed lookups themselves. For SQLite the reads therefore
run on the event loop's own thread over a plain ``sqlite3`` connection: each read
is a few primary-key or index ranges (well under a millisecond), and in WAL mode a
reader never waits for the writer. PostgreSQL keeps the async engine.

The read functions in ``storage`` take an :class:`AsyncConnection` and only
``await conn.execute(...)`` / ``conn.scalar(...)``; :class:`_Direct` gives them
that over the synchronous connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def _read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The writer set WAL (persistent); a read waits at most this long for a lock
    # (only a WAL recovery or checkpoint restart takes one readers respect).
    cursor.execute("PRAGMA busy_timeout=2000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


class _Direct:
    """A synchronous connection behind the part of the async interface reads use."""

    def __init__(self, sync: Connection) -> None:
        self._sync = sync
        self.dialect = sync.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        """Run a statement now (no thread hop); the result is buffered, as the async one."""
        return self._sync.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        """The first column of the first row."""
        return self._sync.scalar(statement, parameters)


class ReadConnections:
    """Where rollup reads get their connection (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._direct: Engine | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._direct = create_engine(engine.url.set(drivername="sqlite"))
            event.listen(self._direct, "connect", _read_pragmas)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read (returned to its pool afterwards)."""
        if self._direct is None:
            async with self._engine.connect() as conn:
                yield conn
            return
        with self._direct.connect() as sync:
            yield cast(AsyncConnection, _Direct(sync))

    def dispose(self) -> None:
        """Close the direct connections (the async engine is its owner's to dispose)."""
        if self._direct is not None:
            self._direct.dispose()
