"""Transaction-scoped locks on names, for several writers of one PostgreSQL database.

Two instances of a service during a rolling update, or district partitions sharing one
database, must not read-modify-write the same person, place or alert at once. Each
writer locks the names its transaction is about to read and extend; PostgreSQL releases
them at commit or rollback. Every transaction takes its locks in one sorted order, so
two writers never deadlock on them. SQLite serialises writers by itself: a no-op there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_LOCK_ALL = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_names(conn: AsyncConnection, names: Iterable[str]) -> None:
    """Hold a lock on each name until the transaction ends (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({lock_key(name) for name in set(names)})
    if keys:
        await conn.execute(_LOCK_ALL, {"keys": keys})
