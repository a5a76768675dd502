"""A migration that fails halfway leaves the database as it was, on SQLite as on
PostgreSQL, so that the operator can fix the cause and run ``migrate`` again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from tests.support.migrations import migration_package, versions_of
from tests.support.postgres import both_backends
from zhibao_shared.db import make_engine, require_migrated, run_migrations

database = both_backends("halfway")

HEADER = "branch_labels = None\ndepends_on = None\n\nfrom alembic import op\n\n\n"
FIRST = (
    "revision = 'a'\ndown_revision = None\n"
    + HEADER
    + ("def upgrade() -> None:\n    op.execute('CREATE TABLE first_table (x INTEGER)')\n")
)
#: Creates a table, then fails on a statement that collides with the first revision's.
SECOND = (
    "revision = 'b'\ndown_revision = 'a'\n"
    + HEADER
    + (
        "def upgrade() -> None:\n"
        "    op.execute('CREATE TABLE second_table (x INTEGER)')\n"
        "    op.execute('CREATE TABLE {collides} (x INTEGER)')\n"
    )
)


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """An importable package of two migrations; the second fails after its first step."""
    scripts = {"a": FIRST, "b": SECOND.format(collides="first_table")}
    with migration_package(tmp_path, "halfway", scripts) as name:
        yield name


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_a_migration_failing_halfway_is_undone_and_can_be_run_again(
    database: str, package: str
) -> None:
    """SQLite's Python driver ran DDL outside the migration's transaction: the first
    revision's table and Alembic's version table stayed, the version unrecorded, and
    running ``migrate`` again after the fix failed ("table first_table already exists")."""
    with pytest.raises(SQLAlchemyError, match="first_table"):
        await run_migrations(database, package)
    assert await _tables(database) == set(), "nothing of either revision is left"

    (versions_of(package) / "b.py").write_text(SECOND.format(collides="third_table"))  # the fix
    await run_migrations(database, package)
    await require_migrated(database, package, "halfway")
    assert await _tables(database) >= {"first_table", "second_table", "third_table"}
