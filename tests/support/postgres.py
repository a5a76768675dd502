"""A real PostgreSQL for tests: Debian's server binaries, or testcontainers where Docker runs.

``postgres_server`` (session) starts one server; ``postgres_url`` (function)
creates a fresh database on it for each test and returns its asyncpg URL.
Without binaries and without Docker the tests skip, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from zhibao_shared.natsserver import free_port, wait_for_port

PG_USER = "postgres"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    return Path(found[-1]).parent if found else None


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parts[4])
    except (IndexError, ValueError):
        return 0.0


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    return (
        [runuser, "-u", PG_USER, "--", *argv] if runuser else ["su", PG_USER, "-c", " ".join(argv)]
    )


@dataclass
class LocalPostgres:
    """A postgres server process in a temporary directory."""

    bin_dir: Path
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER, PG_USER)
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    PG_USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            _as_postgres(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=50",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not wait_for_port("127.0.0.1", self.port, 30):
            self.stop()
            raise RuntimeError(
                f"postgres did not start: {(self.root / 'postgres.log').read_text()}"
            )
        time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _docker_available() -> bool:
    return Path("/var/run/docker.sock").exists() or bool(os.environ.get("DOCKER_HOST"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Admin DSN (plain ``postgresql://``) of a session-wide PostgreSQL server."""
    bin_dir = _bin_dir()
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
