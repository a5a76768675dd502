"""The alerts service's CPU cost, measured on its own.

``uv run python -m zhibao_bench.profile_alerts [--profile]``.

Not the benchmark (which runs every service): a quick, reproducible harness for
working on the alerts service on a shared machine. It measures CPU time (of
this process), not wall time, so other work on the machine barely moves it.

* **Per event.** A real nats-server gets the benchmark's batched workload
  (``build_workload``, 100-event bundles of one district as intake publishes
  them); then the alerts service is wired in this process as ``zhibao up``
  wires it (``bootstrap.build`` and ``connect``: its events and tasks
  consumers, dispatcher, watchdog and configuration watcher, everything but the
  HTTP server) and consumes the stream. CPU time of the process from start to
  caught up, divided by the events, is the figure the benchmark reports as
  ``cpu_us_per_event`` for the alerts process; a cProfile top list says where
  it goes.
* **Idle.** Then ``--idle-alerts`` confirmed cases of distinct persons open as
  many alerts; once they are paged (``--settle-seconds``), the process's CPU share over
  ``--idle-seconds`` of nothing arriving is the benchmark's
  ``alerts_idle_cpu_pct``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import nats
import psutil
import typer

from zhibao_alerts.bootstrap import Alerts, build, migrate
from zhibao_alerts.settings import AlertsSettings
from zhibao_bench.fill import publish_direct
from zhibao_bench.idle import confirmed_cases
from zhibao_bench.workload import build_workload
from zhibao_shared.broker import declare_stream, events_stream_config
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.runtime import tune_gc


def _settings(data: Path, url: str) -> AlertsSettings:
    """The alerts settings as ``zhibao up`` gives them (a data directory, the bus)."""
    os.environ["ZHIBAO_DATA_DIR"] = str(data)
    os.environ["ZHIBAO_NATS_URL"] = url
    return AlertsSettings()


async def _declare_streams(settings: AlertsSettings) -> None:
    client = await nats.connect(settings.nats_url)
    try:
        await declare_stream(client.jetstream(), events_stream_config(settings))
    finally:
        await client.close()


async def _caught_up(service: Alerts, events: int, timeout_s: float) -> None:
    """Until the events consumer has acked ``events`` events and nothing is pending."""
    assert service.consumer is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.consumer.stats.events >= events and await service.consumer.pending() == 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"alerts consumed {service.consumer.stats.events} of {events} events")


class _GcClock:
    """CPU time spent in the cycle collector, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds[info["generation"]] += time.process_time() - self._started
            self.runs[info["generation"]] += 1


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process (the database driver's run SQLite)."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def _top(profile: cProfile.Profile, lines: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


async def _measure(
    settings: AlertsSettings,
    events: int,
    idle_alerts: int,
    idle_s: float,
    settle_s: float,
    profiles: tuple[cProfile.Profile, cProfile.Profile] | None,
) -> dict[str, Any]:
    await migrate(settings)
    await _declare_streams(settings)
    workload = build_workload(events, tag="profile", days=2)
    await publish_direct(settings.nats_url, workload.events, 100)
    service = build(settings)
    tune_gc()  # as every service process does once it is built
    collector = _GcClock()
    gc.callbacks.append(collector)
    threads = _thread_cpu()
    cpu, wall = time.process_time(), time.perf_counter()
    if profiles is not None:
        profiles[0].enable()
    await service.connect()
    await _caught_up(service, events, timeout_s=1800)
    if profiles is not None:
        profiles[0].disable()
    used, elapsed = time.process_time() - cpu, time.perf_counter() - wall
    gc.callbacks.remove(collector)
    main = threading.get_native_id()
    others = sum(s - threads.get(t, 0.0) for t, s in _thread_cpu().items() if t != main)
    figures: dict[str, Any] = {
        "events": events,
        "cpu_us_per_event": round(used / events * 1e6, 1),
        "cpu_s": round(used, 2),
        "wall_s": round(elapsed, 2),
        "other_threads_us_per_event": round(others / events * 1e6, 1),
        "gc_us_per_event": round(sum(collector.seconds) / events * 1e6, 1),
        "gc_runs_by_generation": collector.runs,
    }
    if idle_alerts:
        await publish_direct(settings.nats_url, confirmed_cases(idle_alerts, "idle"), 100)
        await _caught_up(service, events + idle_alerts, timeout_s=600)
        await asyncio.sleep(settle_s)  # first pages, the watchdog's first pass after catching up
        cpu, wall = time.process_time(), time.perf_counter()
        if profiles is not None:
            profiles[1].enable()
        await asyncio.sleep(idle_s)
        if profiles is not None:
            profiles[1].disable()
        used, elapsed = time.process_time() - cpu, time.perf_counter() - wall
        figures["idle_open_alerts"] = idle_alerts
        figures["idle_cpu_pct"] = round(100 * used / elapsed, 2)
    await service.close()
    return figures


def main(
    events: Annotated[int, typer.Option(help="Events of the batched workload")] = 20_000,
    idle_alerts: Annotated[int, typer.Option(help="Open alerts while idle (0: skip)")] = 1_000,
    idle_seconds: Annotated[float, typer.Option(help="Idle stretch measured")] = 20.0,
    settle_seconds: Annotated[float, typer.Option(help="Wait before the idle stretch")] = 15.0,
    profile: Annotated[bool, typer.Option(help="cProfile both stretches (slower)")] = False,
    top: Annotated[int, typer.Option(help="Lines of the profile's top lists")] = 30,
) -> None:
    """Measure the alerts service's CPU per event and at rest; print the figures."""
    with tempfile.TemporaryDirectory(prefix="zhibao-profile-alerts-") as tmp:
        data = Path(tmp)
        server = NatsServer(data / "jetstream")
        server.start()
        try:
            settings = _settings(data, server.url)
            profiles = (cProfile.Profile(), cProfile.Profile()) if profile else None
            figures = asyncio.run(
                _measure(settings, events, idle_alerts, idle_seconds, settle_seconds, profiles)
            )
        finally:
            server.stop()
    for key, value in figures.items():
        typer.echo(f"{key:<24} {value}")
    if profiles is not None:
        typer.echo("== consuming the workload ==")
        typer.echo(_top(profiles[0], top))
        if idle_alerts:
            typer.echo("== idle with open alerts ==")
            typer.echo(_top(profiles[1], top))


if __name__ == "__main__":
    typer.run(main)
