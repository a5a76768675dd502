"""Throwaway Alembic migration packages for tests of ``zhibao_shared.db``'s migrating."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: An ``env.py`` that runs on the connection ``zhibao_shared.db`` hands over.
ENV = """
from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""


@contextmanager
def migration_package(root: Path, prefix: str, scripts: dict[str, str]) -> Iterator[str]:
    """An importable package under ``root`` whose ``migrations/versions`` holds
    ``scripts`` (file stem -> source); yields its name and unloads it afterwards."""
    name = f"{prefix}_{root.name.replace('-', '_')}"
    versions = root / "pkgs" / name / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions.parent.parent / "__init__.py").write_text("")
    (versions.parent / "env.py").write_text(ENV)
    for stem, source in scripts.items():
        (versions / f"{stem}.py").write_text(source)
    sys.path.insert(0, str(root / "pkgs"))
    try:
        yield name
    finally:
        sys.path.remove(str(root / "pkgs"))
        sys.modules.pop(name, None)


def versions_of(package: str) -> Path:
    """The ``migrations/versions`` folder of a package made by :func:`migration_package`."""
    return Path(sys.modules[package].__path__[0]) / "migrations" / "versions"
