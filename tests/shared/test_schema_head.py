"""``require_migrated`` on migrations with two branches and a merge, on SQLite and
PostgreSQL: a database is at head only when every branch is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.migrations import migration_package, versions_of
from tests.support.postgres import both_backends
from zhibao_shared.db import Unmigrated, require_migrated, run_migrations

database = both_backends("branched")

#: revision -> what it revises: ``a`` starts two branches, ``b1`` and ``c1``.
REVISIONS = {"a": None, "b1": "a", "c1": "a"}


def _revision(name: str, down: str | tuple[str, ...] | None) -> str:
    return (
        f"revision = {name!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
        "depends_on = None\n\nfrom alembic import op\n\n\n"
        f"def upgrade() -> None:\n    op.execute('CREATE TABLE t_{name} (x INTEGER)')\n\n\n"
        f"def downgrade() -> None:\n    op.execute('DROP TABLE t_{name}')\n"
    )


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """An importable package whose migrations branch after ``a`` (heads ``b1``, ``c1``)."""
    scripts = {revision: _revision(revision, down) for revision, down in REVISIONS.items()}
    with migration_package(tmp_path, "branched", scripts) as name:
        yield name


def _merge(package: str) -> None:
    """Add a revision merging the two branches."""
    (versions_of(package) / "m.py").write_text(_revision("m", ("b1", "c1")))


async def test_a_database_on_one_branch_lacks_the_other(database: str, package: str) -> None:
    with pytest.raises(Unmigrated, match="no branched schema"):
        await require_migrated(database, package, "branched")
    await run_migrations(database, package)
    await require_migrated(database, package, "branched")  # both heads applied

    await run_migrations(database, package, downgrade_to="c1@a")
    with pytest.raises(Unmigrated, match="lacks the migrations c1: run `zhibao branched"):
        await require_migrated(database, package, "branched")

    _merge(package)
    with pytest.raises(Unmigrated, match="lacks the migrations c1, m:"):
        await require_migrated(database, package, "branched")
    await run_migrations(database, package)
    await require_migrated(database, package, "branched")
