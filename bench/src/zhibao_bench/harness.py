"""Running the real services for a benchmark phase and observing them from outside."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import nats
import psutil

from zhibao_bench.exactness import series
from zhibao_cli.stack import SERVICES, Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.subjects import EVENTS_STREAM
from zhibao_shared.tokens import Role, TokenStore

CITY = "6401"
PROVINCE = "64"  # the top of the sample registry: the read token covers every level
#: Every service, as ``zhibao up`` runs them.
ALL_SERVICES = tuple(spec.name for spec in SERVICES)
DISTRICT = "640106"


@dataclass
class RssSampler:
    """Samples the resident memory of processes in a background thread; keeps the peaks."""

    pids: dict[str, int]
    interval_s: float = 0.25
    peaks_mb: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), rss)
            time.sleep(self.interval_s)


@dataclass
class CpuShares:
    """How many cores each process, and the machine as a whole, kept busy over a stretch
    (``with CpuShares(run.cpu_seconds) as shares: ...``): whether a latency was the
    services' own work or a machine with no core to spare."""

    cpu_seconds: Callable[[], dict[str, float]]
    #: Cores kept busy by each process (CPU seconds over the stretch's wall seconds).
    cores: dict[str, float] = field(default_factory=dict)
    #: Cores the whole machine kept busy, whatever ran on it.
    machine_busy_cores: float = 0.0
    machine_cores: int = field(default_factory=lambda: psutil.cpu_count() or 1)
    _before: dict[str, float] = field(default_factory=dict)
    _machine_before: float = 0.0
    _started: float = 0.0

    def __enter__(self) -> CpuShares:
        self._before = self.cpu_seconds()
        self._machine_before = machine_busy_s()
        self._started = time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        wall = max(time.monotonic() - self._started, 1e-9)
        after = self.cpu_seconds()
        self.cores = {
            name: round((seconds - self._before.get(name, 0.0)) / wall, 3)
            for name, seconds in after.items()
        }
        self.machine_busy_cores = round((machine_busy_s() - self._machine_before) / wall, 3)


def machine_busy_s() -> float:
    """CPU seconds the machine has spent busy since boot, over all its cores (idle, I/O
    wait and time taken by the hypervisor left out)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq")
    return float(sum(getattr(times, name, 0.0) for name in busy))


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it has gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def nats_server_pid() -> dict[str, int]:
    """The nats-server this process started (the benchmark runs one stack at a time)."""
    for child in psutil.Process().children():
        if "nats-server" in child.name():
            return {"nats-server": child.pid}
    return {}


@dataclass
class Running:
    """A started stack plus tokens to talk to it."""

    stack: Stack
    report_token: str
    read_token: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=10, headers={"authorization": f"Bearer {self.read_token}"})

    def url(self, name: str) -> str:
        """Base URL of a service."""
        return self.stack.url(name)

    def pids(self) -> dict[str, int]:
        """Process ids of the services."""
        return {name: pid for name in self.stack.services if (pid := self.stack.pid(name))}

    def total(self, metric: str, unit: str, first: date, last: date) -> int:
        """The sum of a unit's daily figures from ``first`` to ``last`` (the read API)."""
        points = series(self.http, self.url("aggregator"), unit, metric, first, last)
        return sum(points.values())

    def shown(self, first: date, last: date, metric: str = "events") -> int:
        """The city's total of a metric from ``first`` to ``last`` (UTC days) as the rollups
        show it: a day more, as the city's local day may be ahead of UTC's."""
        return self.total(metric, CITY, first, last + timedelta(days=1))

    def wait_visible(
        self, expected: int, first: date, last: date, timeout_s: float, metric: str = "events"
    ) -> float:
        """Block until the city's rollups from ``first`` to ``last`` add up to ``expected``;
        return the time.perf_counter() then (polled every 100 ms)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.shown(first, last, metric) >= expected:
                return time.perf_counter()
            time.sleep(0.1)
        shown = self.shown(first, last, metric)
        raise TimeoutError(f"rollups show {shown} of {expected} {metric}")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each service and by nats-server."""
        pids = {**self.pids(), **nats_server_pid()}
        return {name: process_cpu_s(pid) for name, pid in pids.items()}

    def wait_settled(self, timeout_s: float) -> float:
        """Block until every consumer of the events stream has acked all; return the wait in s.

        The aggregator can show every event while the alerts service is still
        working through its backlog on the same cores; reads measured then would
        time that backlog, not the lookup.
        """
        started = time.perf_counter()
        asyncio.run(_settled(self.stack.bus_url, timeout_s))
        return time.perf_counter() - started


async def _settled(url: str, timeout_s: float) -> None:
    client = await nats.connect(url)
    try:
        jsm = client.jsm()
        deadline = time.monotonic() + timeout_s
        while True:
            infos = await jsm.consumers_info(EVENTS_STREAM)
            busy = {i.name: (i.num_pending or 0) + (i.num_ack_pending or 0) for i in infos}
            if not any(busy.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumers still behind: {busy}")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


@contextmanager
def running_stack(
    names: tuple[str, ...] = ALL_SERVICES,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Running]:
    """Start nats-server and the named services (all, as ``zhibao up`` does, by default)
    in a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="zhibao-bench-") as tmp:
        data = Path(tmp)
        env = {
            **os.environ,
            "ZHIBAO_DATA_DIR": str(data),
            "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
            **{spec.port_variable: str(free_port()) for spec in SERVICES},
            "ZHIBAO_LOG_LEVEL": "WARNING",
            "ZHIBAO_RATE_LIMIT_EVENTS_PER_S": "10000000",
            "ZHIBAO_RATE_LIMIT_BURST": "10000000",
            "ZHIBAO_INTAKE_DAILY_BYTES_PER_COMMUNITY": "0",  # measured, not held back
            **(extra_env or {}),
        }
        if database_url:
            env["ZHIBAO_AGGREGATOR_DATABASE_URL"] = database_url
        tokens = TokenStore.in_data_dir(data)
        report = tokens.create(scopes=[CITY], role=Role.REPORT, name="bench-report")[1]
        read = tokens.create(scopes=[PROVINCE], role=Role.OPERATE, name="bench-read")[1]
        tokens.close()
        stack = Stack(
            env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], names=names, quiet=True
        )
        with stack:
            yield Running(stack, report, read)
