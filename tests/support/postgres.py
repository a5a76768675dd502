"""A real PostgreSQL for tests: Debian's server binaries, or testcontainers where Docker runs.

``postgres_server`` (session) starts one server; ``postgres_url`` (function)
creates a fresh database on it for each test and returns its asyncpg URL.
Without binaries and without Docker the tests skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from zhibao_shared.db import sqlite_url
from zhibao_shared.natsserver import free_port
from zhibao_shared.pgserver import LocalPostgres, postgres_bin_dir


def _docker_available() -> bool:
    return Path("/var/run/docker.sock").exists() or bool(os.environ.get("DOCKER_HOST"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Admin DSN (plain ``postgresql://``) of a session-wide PostgreSQL server."""
    bin_dir = postgres_bin_dir()
    if bin_dir is not None:
        root = Path(tempfile.mkdtemp(prefix="zhibao-pg-"))
        server = LocalPostgres(bin_dir, free_port(), root)
        server.start()
        try:
            yield server.admin_dsn
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    pytest.skip(
        "no PostgreSQL: neither /usr/lib/postgresql/*/bin (apt-get install postgresql) "
        "nor a Docker engine is available"
    )


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, as an asyncpg SQLAlchemy URL."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = postgres_server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    admin = await asyncpg.connect(postgres_server)
    try:
        with suppress(Exception):
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


#: The backends of :func:`both_backends`.
BACKENDS = ("sqlite", "postgres")


def both_backends(service: str) -> Callable[..., str]:
    """A ``database`` fixture running each test on a SQLite file of ``service`` and on a
    fresh PostgreSQL database; assign it in a test module or conftest
    (``database = both_backends("response")``)."""

    @pytest.fixture(params=BACKENDS, name="database")
    def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        if request.param == "postgres":
            url: str = request.getfixturevalue("postgres_url")
            return url
        return sqlite_url(tmp_path, service)

    return database
