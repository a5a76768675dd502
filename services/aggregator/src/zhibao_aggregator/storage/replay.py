"""How a rebuild writes: the same writer, tuned for replaying a whole stream at once.

A rebuild fills an empty database that nobody reads until it is done (the service
is stopped), so it

* defers the secondary indexes that only reads use (:data:`READ_INDEXES`): they are
  dropped before the replay and built once after it, in one sorted pass, instead
  of being updated row by row (the counters' ``(unit, metric, day)`` index is one
  more B-tree for every new counter row). The indexes the writer itself looks up stay;
* on SQLite, does not wait for the disk at every commit (``synchronous=OFF``) and
  keeps a larger page cache. A crash of the machine mid-rebuild can then leave the
  file unusable: the rebuild is run again (``--force``), as after any interrupted
  rebuild, since the stream still holds every event;
* on SQLite, begins each transaction with the write lock (``BEGIN IMMEDIATE``) and
  waits for it as long as it takes: several processes replay the stream at once
  (``bootstrap.rebuild``), and a transaction that read before another one's commit
  could not write after it (SQLite would refuse it, and the batch would be redone).

Larger transactions (the rebuild's own batch size) and counter changes held in
memory across batches (``writer.HeldCounters``) do the rest: rows of one (unit, day,
metric) from many events become one upsert. While it runs, the table
``rebuild_in_progress`` holds a row (:func:`rebuild_started`, :func:`rebuild_finished`):
an interrupted rebuild leaves it, and the service refuses to start
(:func:`unfinished_rebuild`) until a rebuild with ``--force`` has finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Index, delete, event, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_aggregator.storage.tables import (
    case_facts,
    counters,
    daily_reports,
    rebuild_in_progress,
)
from zhibao_shared.db import has_table, is_sqlite, make_engine, sqlite_begins

#: Indexes only reads use (the writer looks rows up by primary key or by
#: ``ix_held_corrections_corrected``, which stays).
READ_INDEXES: tuple[Index, ...] = tuple(
    index
    for table in (counters, case_facts, daily_reports)
    for index in sorted(table.indexes, key=lambda i: str(i.name))
)

#: SQLite page cache of the rebuild's connections (KiB; negative means KiB to SQLite).
CACHE_KIB = 65_536
#: How long a rebuild's transaction waits for the write lock (ms): another replaying
#: process may be writing the counters it held, a million keys or more.
BUSY_TIMEOUT_MS = 3_600_000


def _replay_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def replay_engine(url: str) -> AsyncEngine:
    """An engine for a rebuild (see the module docstring); an ordinary one for PostgreSQL."""
    engine = make_engine(url)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _replay_pragmas)
        sqlite_begins(engine, "BEGIN IMMEDIATE")
    return engine


@asynccontextmanager
async def read_indexes_deferred(engine: AsyncEngine) -> AsyncIterator[None]:
    """Drop :data:`READ_INDEXES` for the body, and build them again afterwards (also
    when the body fails: a database is never left without them)."""
    async with engine.begin() as conn:
        await conn.run_sync(_drop)
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(_create)


def _drop(sync: Connection) -> None:
    for index in READ_INDEXES:
        index.drop(sync, checkfirst=True)


def _create(sync: Connection) -> None:
    for index in READ_INDEXES:
        index.create(sync, checkfirst=True)


async def rebuild_started(conn: AsyncConnection) -> None:
    """Mark the database as being rebuilt (in the transaction that empties it)."""
    await conn.execute(insert(rebuild_in_progress).values(started_at=datetime.now(UTC)))


async def rebuild_finished(engine: AsyncEngine) -> None:
    """Clear the mark: every held counter change is written, every index is back."""
    async with engine.begin() as conn:
        await conn.execute(delete(rebuild_in_progress))


async def unfinished_rebuild(url: str) -> datetime | None:
    """When the rebuild of the database at ``url`` that did not finish started (None:
    there is none)."""
    if not await has_table(url, rebuild_in_progress.name):  # not migrated yet: none ran
        return None
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            started: datetime | None = await conn.scalar(select(rebuild_in_progress.c.started_at))
            return started
    finally:
        await engine.dispose()
