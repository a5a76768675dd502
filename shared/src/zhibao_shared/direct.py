"""SQLite without aiosqlite's thread hops: a plain ``sqlite3`` connection behind the part
of the async interface the storage functions use.

aiosqlite runs every call in its own thread, and SQLAlchemy's adapter makes four calls
of a statement (cursor, execute, fetch, close): a rollup read made about twenty hops, a
batch of the writer about sixty, and each wakes another thread (on a busy machine,
a third of a read's time in the profile of ``zhibao_bench.aggregator_harness``). So on
SQLite

* the aggregator's rollup reads (``zhibao_aggregator.storage.read_connections``) run
  on the event loop's thread: a few index ranges, well under a millisecond;
* a consumer batch's transaction (:class:`DirectTransactions`: the aggregator's and the
  alerts service's) runs whole in a worker thread: two hops per batch instead of one
  per call, and the loop stays free meanwhile (the aggregator makes one more, for the
  batch's pure work before the transaction).

The storage functions stay ``async`` (PostgreSQL's asyncpg needs it): over
:class:`Direct` their awaits never suspend, so :func:`complete` runs such a coroutine
to its end synchronously.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_shared.db import sqlite_begins

T = TypeVar("T")


class Direct:
    """A synchronous connection behind ``await conn.execute(...)``, ``conn.scalar(...)``
    and ``conn.exec_driver_sql(...)``."""

    def __init__(self, sync: Connection) -> None:
        self._sync = sync
        self.dialect = sync.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        """Run a statement now; the result is buffered, as the async one."""
        return self._sync.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        """The first column of the first row."""
        return self._sync.scalar(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        """A statement in the driver's own SQL and parameter style."""
        return self._sync.exec_driver_sql(statement, parameters)


def as_async(sync: Connection) -> AsyncConnection:
    """``sync`` as the storage functions take it (see :class:`Direct`)."""
    return cast(AsyncConnection, Direct(sync))


def complete(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its awaits are :class:`Direct` calls)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a direct SQLite transaction awaited something that suspends")


def direct_engine(engine: AsyncEngine, *, begin: str | None = None) -> Engine | None:
    """A ``sqlite3`` engine on the same file with the same connect-time pragmas and way
    of beginning transactions (the listeners ``make_engine`` and the rebuild registered),
    or None when ``engine`` is not a SQLite file. ``begin``: begin every transaction
    with this statement instead (:func:`zhibao_shared.db.sqlite_begins`)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    direct = create_engine(
        engine.url.set(drivername="sqlite"), connect_args={"check_same_thread": False}
    )
    for listener in _own(engine.sync_engine.pool.dispatch.connect):
        event.listen(direct, "connect", listener)
    if begin is not None:
        sqlite_begins(direct, begin)
        return direct
    for listener in _own(engine.sync_engine.dispatch.begin):
        event.listen(direct, "begin", listener)
    return direct


def _own(listeners: Any) -> list[Callable[..., Any]]:
    """The listeners registered by Zhibao's code (not SQLAlchemy's own)."""
    return [
        listener
        for listener in list(listeners)
        if not getattr(listener, "__module__", "").startswith("sqlalchemy")
    ]


class DirectTransactions:
    """One transaction per call: on SQLite in a worker thread over a direct connection,
    otherwise on the async engine.

    On SQLite each begins ``IMMEDIATE``: it holds the write lock from its first read, so
    another process writing the same file (a second instance during a rolling update)
    waits for it rather than interleaving with its reads (with the driver's deferred
    begin, two instances counted people twice: ``tests/aggregator/
    test_concurrent_instances.py``). PostgreSQL's writers lock names instead.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._direct = direct_engine(engine, begin="BEGIN IMMEDIATE")

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in one transaction, committed when this returns."""
        if self._direct is None:
            async with self._engine.begin() as conn:
                return await work(conn)
        return await asyncio.to_thread(self._in_thread, work)

    def _in_thread(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        assert self._direct is not None
        with self._direct.begin() as sync:
            return complete(cast(Coroutine[Any, Any, T], work(as_async(sync))))

    def dispose(self) -> None:
        """Close the direct connections."""
        if self._direct is not None:
            self._direct.dispose()
