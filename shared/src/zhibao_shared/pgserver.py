"""Run a local PostgreSQL from Debian's server binaries (tests and the benchmark).

The binaries live under ``/usr/lib/postgresql/<version>/bin`` (the newest is
used); ``initdb`` refuses root, so as root the server runs as ``postgres``.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from zhibao_shared.natsserver import die_with_parent, wait_for_port

PG_USER = "postgres"


def postgres_bin_dir() -> Path | None:
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
    """A postgres server process in ``root``, on loopback, trust auth (tests and benchmarks)."""

    bin_dir: Path
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_dsn(self) -> str:
        """Superuser DSN of the ``postgres`` database."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    def start(self) -> None:
        """initdb (as the postgres user when root) and start the server."""
        data = self.data_dir
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER, PG_USER)
        subprocess.run(  # noqa: S603
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
        self._launch()

    def _launch(self) -> None:
        data = self.data_dir
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(  # noqa: S603
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
            preexec_fn=die_with_parent,
        )
        if not wait_for_port("127.0.0.1", self.port, 30):
            self.stop()
            raise RuntimeError(
                f"postgres did not start: {(self.root / 'postgres.log').read_text()}"
            )
        time.sleep(0.3)

    def restart(self) -> None:
        """Fast shutdown (open sessions are cut off, as in a real restart), then start the
        server again on the same port and data directory."""
        if self.process is not None and self.process.poll() is None:
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGINT)
            self.process.wait(60)
        self._launch()

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
