"""A running Zhibao stack: nats-server plus service processes sharing one environment.

Used by ``zhibao up``, the benchmark and the end-to-end and fault tests, so
there is one way to start, probe, kill and stop the system.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from zhibao_shared.bus_access import OPERATOR, accounts_block, bus_users, quote_password
from zhibao_shared.bus_credentials import BusCredentials, bus_dir
from zhibao_shared.natsserver import NatsServer, die_with_parent, wait_for_port
from zhibao_shared.private_files import private_dir
from zhibao_shared.settings import ZhibaoSettings

HOST = "127.0.0.1"


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """True once ``url``/readyz answers 200; False after ``timeout_s`` or once ``alive()``
    says the process behind it has gone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: its command name, port variable and default port."""

    name: str
    port_variable: str
    default_port: int
    has_migrations: bool


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("intake", "ZHIBAO_INTAKE_PORT", 8101, has_migrations=False),
    ServiceSpec("aggregator", "ZHIBAO_AGGREGATOR_PORT", 8102, has_migrations=True),
    ServiceSpec("alerts", "ZHIBAO_ALERTS_PORT", 8103, has_migrations=True),
    ServiceSpec("response", "ZHIBAO_RESPONSE_PORT", 8104, has_migrations=True),
)


class StackError(RuntimeError):
    """A component could not start or died."""


@dataclass
class ServiceProcess:
    """A service child process."""

    spec: ServiceSpec
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the service's HTTP API."""
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None


@dataclass
class Stack:
    """nats-server (optional) and services, started in order and stopped in reverse."""

    env: dict[str, str]
    data_dir: Path
    nats_url: str
    names: tuple[str, ...] = tuple(s.name for s in SERVICES)
    start_nats: bool = True
    quiet: bool = False
    #: When set, each service's stdout and stderr are appended to ``<log_dir>/<name>.log``.
    log_dir: Path | None = None
    nats: NatsServer | None = None
    #: The bus passwords when this stack runs its own (authenticated) nats-server.
    credentials: BusCredentials | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Each service finds the others where this stack puts them (alert links to
        # rollups; the page's alert panel to the alerts service), not at the defaults.
        aggregator_port = self.env.get("ZHIBAO_AGGREGATOR_PORT", "8102")
        alerts_port = self.env.get("ZHIBAO_ALERTS_PORT", "8103")
        self.env.setdefault("ZHIBAO_AGGREGATOR_URL", f"http://{HOST}:{aggregator_port}")
        self.env.setdefault("ZHIBAO_ALERTS_URL", f"http://{HOST}:{alerts_port}")
        intake_port = self.env.get("ZHIBAO_INTAKE_PORT", "8101")  # the worker page's results
        self.env.setdefault("ZHIBAO_INTAKE_URL", f"http://{HOST}:{intake_port}")
        specs = {s.name: s for s in SERVICES}
        for name in self.names:
            spec = specs[name]
            port = int(self.env.get(spec.port_variable, spec.default_port))
            self.services[name] = ServiceProcess(spec, port)
        if self.start_nats:
            self._configure_nats()

    def _configure_nats(self) -> None:
        """Its own nats-server: one user per service, the operator, no anonymous access.

        The data directory (event store, databases, logs, keys) is its owner's alone.
        """
        private_dir(self.data_dir)
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.credentials = BusCredentials.in_data_dir(self.data_dir)
        users = bus_users(
            aggregator_durables=(self.env.get("ZHIBAO_AGGREGATOR_DURABLE", "aggregator"),),
            alerts_durables=(self.env.get("ZHIBAO_ALERTS_DURABLE", "alerts"),),
        )
        passwords = {u: quote_password(p) for u, p in self.credentials.passwords.items()}
        self.nats = NatsServer.for_url(
            self.nats_url,
            self.data_dir / "jetstream",
            logs / "nats.log",
            accounts=accounts_block(users, passwords),
        )
        self.nats.config_file = bus_dir(self.data_dir) / "nats-server.conf"
        self.nats.sync_interval = self.env.get("ZHIBAO_NATS_SYNC_INTERVAL") or None

    @property
    def bus_url(self) -> str:
        """The NATS URL with the operator's credentials (for tools and tests)."""
        return self.user_url(OPERATOR)

    def user_url(self, user: str) -> str:
        """The NATS URL with one bus user's credentials (the bare URL on a foreign bus)."""
        if self.credentials is None or self.nats is None:
            return self.nats_url
        return self.credentials.url(user, self.nats.url)

    def _service_env(self, name: str) -> dict[str, str]:
        """A service's environment: the stack's, with its own bus user."""
        if self.credentials is None:
            return self.env
        env = {**self.env, "ZHIBAO_NATS_URL": self.user_url(name)}
        if name == "aggregator":
            env["ZHIBAO_DASHBOARD_NATS_URL"] = self.user_url("dashboard")
        return env

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start nats-server, then each service (after its migrations), waiting for readiness."""
        if self.nats is not None:
            if wait_for_port(self.nats.host, self.nats.port, 0.2):
                raise StackError(f"something already listens on {self.nats_url}")
            self.nats.start()
            self.provision_streams()
        for service in self.services.values():
            self.start_service(service.spec.name)

    def provision_streams(self) -> None:
        """The operator's step: declare the streams with their configured limits."""
        env = {**self.env, "ZHIBAO_NATS_URL": self.bus_url}
        with self._output("bus-setup") as output:
            subprocess.run(
                [sys.executable, "-m", "zhibao_cli", "bus-setup"],
                env=env,
                check=True,
                stdout=output,
                stderr=output,
            )

    def _command(self, name: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "zhibao_cli", name, *args]

    def start_service(self, name: str, timeout_s: float = 60.0, migrate: bool = True) -> None:
        """Start (or restart) one service and wait until /readyz answers 200.

        Its migrations run first unless ``migrate`` is false (a restart of a service
        whose schema is already current, as after a crash).
        """
        service = self.services[name]
        if wait_for_port(HOST, service.port, 0.1):
            raise StackError(f"port {service.port} for {name} is in use")
        with self._output(name) as output:
            if migrate and service.spec.has_migrations:
                subprocess.run(  # noqa: S603
                    self._command(name, "migrate"),
                    env=self._service_env(name),
                    check=True,
                    stdout=output,
                    stderr=output,
                )
            service.process = subprocess.Popen(  # noqa: S603
                self._command(name),
                env=self._service_env(name),
                stdout=output,
                stderr=output,
                preexec_fn=die_with_parent,
            )
        self._wait_ready(service, timeout_s)

    @contextmanager
    def _output(self, name: str) -> Iterator[int | IO[bytes] | None]:
        """Where a service's output goes: its log file, nowhere (quiet) or the terminal."""
        if self.log_dir is None:
            yield subprocess.DEVNULL if self.quiet else None
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log_file:
            yield log_file

    def _wait_ready(self, service: ServiceProcess, timeout_s: float) -> None:
        if wait_ready(service.url, timeout_s, alive=lambda: service.alive):
            return
        if not service.alive:
            raise StackError(f"{service.spec.name} exited during start-up")
        raise StackError(f"{service.spec.name} was not ready within {timeout_s:.0f}s")

    def stop_service(self, name: str, grace_s: float = 20.0) -> None:
        """SIGTERM one service (it drains), killing it if it overstays the grace period."""
        process = self.services[name].process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill_service(self, name: str) -> None:
        """SIGKILL one service (crash simulation)."""
        process = self.services[name].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def dead(self) -> list[str]:
        """Services whose process has exited."""
        return [name for name, s in self.services.items() if s.process and not s.alive]

    def stop(self) -> None:
        """Stop services in reverse order, then nats-server."""
        for name in reversed(list(self.services)):
            self.stop_service(name)
        if self.nats is not None:
            self.nats.stop()

    def url(self, name: str) -> str:
        """Base URL of a service."""
        return self.services[name].url

    def pid(self, name: str) -> int | None:
        """Process id of a running service."""
        process = self.services[name].process
        return process.pid if process is not None else None


def stack_from_environment(**overrides: str) -> Stack:
    """A stack configured like the services: from ZHIBAO_* variables (plus overrides)."""
    env = {**os.environ, **overrides}
    settings = ZhibaoSettings()
    data_dir = Path(env.get("ZHIBAO_DATA_DIR", str(settings.data_dir)))
    nats_url = env.get("ZHIBAO_NATS_URL", settings.nats_url)
    env["ZHIBAO_DATA_DIR"] = str(data_dir)
    env["ZHIBAO_NATS_URL"] = nats_url
    return Stack(env=env, data_dir=data_dir, nats_url=nats_url)
