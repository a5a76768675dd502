"""How a rebuild writes: the same writer, tuned for replaying a whole stream at once.

A rebuild fills an empty database that nobody reads until it is done (the service
is stopped), so it

* defers the secondary indexes that only reads use (:data:`READ_INDEXES`): they are
  dropped before the replay and built once after it, in one sorted pass, instead
  of being updated row by row (the counters' ``(unit, day)`` index doubled the cost
  of every counter upsert). The indexes the writer itself looks up stay;
* on SQLite, does not wait for the disk at every commit (``synchronous=OFF``) and
  keeps a larger page cache. A crash of the machine mid-rebuild can then leave the
  file unusable: the rebuild is run again (``--force``), as after any interrupted
  rebuild, since the stream still holds every event.

Larger transactions (the rebuild's own batch size) do the rest: rows of one
(unit, day, metric) from many events become one upsert.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Index, event
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.storage.tables import case_facts, counters, daily_reports
from zhibao_shared.db import is_sqlite, make_engine

#: Indexes only reads use (the writer looks rows up by primary key or by
#: ``ix_held_corrections_corrected``, which stays).
READ_INDEXES: tuple[Index, ...] = tuple(
    index
    for table in (counters, case_facts, daily_reports)
    for index in sorted(table.indexes, key=lambda i: str(i.name))
)

#: SQLite page cache of the rebuild's connections (KiB; negative means KiB to SQLite).
CACHE_KIB = 65_536


def _replay_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def replay_engine(url: str) -> AsyncEngine:
    """An engine for a rebuild (see the module docstring); an ordinary one for PostgreSQL."""
    engine = make_engine(url)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _replay_pragmas)
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
