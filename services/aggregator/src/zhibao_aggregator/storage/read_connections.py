"""Connections for the rollup reads: the async engine's, or for SQLite a direct one.

aiosqlite runs every call in its own thread: a SELECT through SQLAlchemy is four
thread hops (cursor, execute, fetch, close), and a rollup read of five statements
paid about twenty of them; in the harness's profile (``zhibao_bench.aggregator_harness``,
a busy machine) waiting for those wake-ups was a third of a read. For SQLite the reads
therefore run on the event loop's own thread over a plain ``sqlite3`` connection: each
read is a few primary-key or index ranges (well under a millisecond), and in WAL mode a
reader never waits for the writer. PostgreSQL keeps the async engine.

See :mod:`zhibao_shared.direct`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_shared.direct import as_async, direct_engine


class ReadConnections:
    """Where rollup reads get their connection (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._direct = direct_engine(engine)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read (returned to its pool afterwards)."""
        if self._direct is None:
            async with self._engine.connect() as conn:
                yield conn
            return
        with self._direct.connect() as sync:
            yield as_async(sync)

    def dispose(self) -> None:
        """Close the direct connections (the async engine is its owner's to dispose)."""
        if self._direct is not None:
            self._direct.dispose()
