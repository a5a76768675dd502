"""Database engine factory: SQLite (embedded, WAL) by default, PostgreSQL in production.

Services keep their own schema (Alembic migrations, run as a step); this
module only makes engines the same way everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, DateTime, Engine, Table, TypeDecorator, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from zhibao_shared.settings import sqlite_url

log = structlog.get_logger(__name__)

__all__ = [
    "Unmigrated",
    "UtcDateTime",
    "conflict_insert",
    "consistent_read",
    "has_table",
    "is_sqlite",
    "make_engine",
    "require_migrated",
    "run_migrations",
    "sqlite_url",
]

if TYPE_CHECKING:
    from alembic.config import Config


def is_sqlite(url: str) -> bool:
    """True for SQLite URLs."""
    return make_url(url).get_backend_name() == "sqlite"


def conflict_insert(
    conn: AsyncConnection | Connection, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` in the connection's dialect, so that it takes ``ON
    CONFLICT`` clauses (``on_conflict_do_nothing``, ``on_conflict_do_update``) on
    PostgreSQL and SQLite alike: a row another instance or a redelivery stored first."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: PostgreSQL session settings. Every statement is planned for its parameters: asyncpg
#: prepares statements, and after five runs PostgreSQL may keep a generic plan made while
#: a table was still empty. Nothing re-plans it before the table is first analysed, so on
#: a fresh database (or a rebuild) the dedup lookup became a sequential scan of every
#: applied event, half a second a batch at 100,000 events.
POSTGRES_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if is_sqlite(url):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if make_url(url).get_driver_name() == "asyncpg":
        connect_args = kwargs.pop("connect_args", {})
        settings = {**POSTGRES_SETTINGS, **connect_args.get("server_settings", {})}
        kwargs["connect_args"] = {**connect_args, "server_settings": settings}
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


@asynccontextmanager
async def consistent_read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads all see the database as it stood at the first of them.

    Without it every statement sees what was committed when it ran (SQLite's driver
    runs reads outside a transaction; PostgreSQL's default is READ COMMITTED), so a page
    read in several statements during a commit can show part of that commit beside what
    it replaced. Reads only: the transaction is rolled back at the end.
    """
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is not None and not driver.in_transaction:  # deferred: a WAL snapshot
                await conn.exec_driver_sql("BEGIN")
        else:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            await conn.rollback()


def _alembic_config(package: str, connection: Connection) -> Config:
    from alembic.config import Config  # only migrations need Alembic (a slow import)

    config = Config()
    location = resources.files(package).joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


async def run_migrations(url: str, package: str, *, downgrade_to: str | None = None) -> None:
    """Alembic ``upgrade heads`` for a service whose scripts live in ``<package>/migrations``
    (``downgrade_to``: ``downgrade`` to that revision instead, as the database stood then).

    Run as an explicit step (``zhibao <service> migrate``), never at import or start-up.
    """
    from alembic import command

    def run(sync: Connection) -> None:
        config = _alembic_config(package, sync)
        if downgrade_to is None:
            command.upgrade(config, "heads")
        else:
            command.downgrade(config, downgrade_to)

    engine = make_engine(url)
    if is_sqlite(url):
        sqlite_begins(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def sqlite_begins(engine: AsyncEngine | Engine, begin: str = "BEGIN") -> None:
    """Make SQLite begin each transaction of ``engine`` at its start, with ``begin``.

    Python's sqlite3 driver begins a transaction only before a DML statement: DDL
    (``CREATE``, ``ALTER``) and reads ran outside it. The driver is told to leave
    transactions alone and ``begin`` starts each (SQLAlchemy's recipe for pysqlite and
    aiosqlite). Migrations use it so that a migration failing halfway leaves nothing
    applied (as on PostgreSQL). The consumers' batch transactions
    (:class:`zhibao_shared.direct.DirectTransactions`) and a rebuild's replaying
    processes use ``BEGIN IMMEDIATE``, so that each holds the write lock from its first
    read: two instances on one file (a rolling update, a rebuild's helper) then never
    extend a history the other changed since they read it. The services' other
    transactions keep the driver's deferred begin (a reader never waits for a writer).
    """
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _driver_leaves_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


class Unmigrated(RuntimeError):
    """A service's database is not at its migrations' head: the service does not start."""


async def require_migrated(url: str, package: str, service: str) -> None:
    """Raise :class:`Unmigrated` unless the database at ``url`` is at the head of the
    migrations in ``<package>/migrations``, naming what it lacks and the command.

    A service starts only on a schema at its head: code on a schema that lacks a
    revision fails at the first statement that needs it (a missing index or column),
    long after it reported ready. A database migrated by a newer version (a revision
    this code does not know, as after rolling the code back) is let through with a
    warning: the operator chose to run the older code on it.
    """
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            state = await conn.run_sync(_schema_state, package)
    finally:
        await engine.dispose()
    remedy = f"run `zhibao {service} migrate` first"
    if not state.applied:
        raise Unmigrated(f"no {service} schema: {remedy}")
    if state.unknown:
        log.warning("schema_newer_than_code", service=service, revisions=list(state.unknown))
    elif state.missing:
        lacking = ", ".join(state.missing)
        raise Unmigrated(f"the {service} database lacks the migrations {lacking}: {remedy}")


@dataclass(frozen=True)
class _SchemaState:
    #: the database's current revisions (none: never migrated)
    applied: tuple[str, ...]
    #: revisions of the code the database lacks, oldest first
    missing: tuple[str, ...]
    #: revisions of the database the code does not know
    unknown: tuple[str, ...]


def _schema_state(sync: Connection, package: str) -> _SchemaState:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(package, sync))
    applied = tuple(MigrationContext.configure(sync).get_current_heads())
    known = {s.revision for s in script.walk_revisions()}
    unknown = tuple(revision for revision in applied if revision not in known)
    if unknown:
        return _SchemaState(applied, (), unknown)

    def down_from(tops: tuple[str, ...] | str) -> list[str]:
        """These revisions and every one they build on, newest first."""
        return [s.revision for s in script.iterate_revisions(tops, "base")]

    # Every revision under the heads that is not under what was applied: on several
    # branches (or below a merge) a range from the applied revisions would miss some.
    done = set(down_from(applied)) if applied else set()
    missing = [revision for revision in down_from("heads") if revision not in done]
    return _SchemaState(applied, tuple(reversed(missing)), ())


async def has_table(url: str, table: str) -> bool:
    """True when ``table`` exists."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: inspect(sync).has_table(table))
    finally:
        await engine.dispose()


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        """Store in UTC."""
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        """Read back as aware UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
