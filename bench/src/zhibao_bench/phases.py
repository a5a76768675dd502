"""The Zhibao phases: reference, batched (SQLite and PostgreSQL), single events,
reads at 200k and 1M events, rebuild. Every phase runs every service as
``zhibao up`` does; rates are rates of events becoming visible in the rollups
(read from the aggregator's API), with the rate of POST answers beside them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhibao_bench import exactness
from zhibao_bench.fill import publish_history
from zhibao_bench.harness import RssSampler, Running, running_stack
from zhibao_bench.loadclient import LoadResult, encode_post, percentile, run_in_process
from zhibao_bench.reads import measure_reads
from zhibao_bench.reference import measure_reference
from zhibao_bench.workload import Truth, Workload, build_workload, span
from zhibao_shared.events import CONTENT_TYPE_BATCH
from zhibao_shared.natsserver import NatsServer


@dataclass(frozen=True)
class Sizes:
    """What the Zhibao phases need of the benchmark's configuration."""

    events: int
    batch_size: int
    single_events: int
    read_requests: int
    million: int
    connections: int
    single_connections: int
    history_days: float
    #: The batched events' times lie within this many days: a live system receives the
    #: day's events and some late ones; the history behind the reads comes from the fill.
    live_days: float = 2


def phase_reference(events: int, payload: bytes) -> dict[str, Any]:
    """(1) nats-py publishing (acked) and a pull consumer fetching and acking."""
    with tempfile.TemporaryDirectory() as tmp:
        # the store in a folder of its own: the server's (owner-only) configuration is
        # written beside the store, and its folder made owner-only; not /tmp itself
        server = NatsServer(Path(tmp) / "jetstream")
        server.start()
        try:
            result = asyncio.run(measure_reference(server.url, max(events // 2, 2000), payload))
        finally:
            server.stop()
    return {
        "reference_events_per_s": round(result.events_per_s),
        "reference_publish_per_s": round(result.publish_per_s),
        "reference_consume_per_s": round(result.consume_per_s),
    }


def posts(url: str, token: str, events: list[dict[str, Any]], size: int) -> list[bytes]:
    """The events as pre-encoded batch POSTs of ``size`` events."""
    return [
        encode_post(
            url, "/v1/events", json.dumps(events[i : i + size]).encode(), token, CONTENT_TYPE_BATCH
        )
        for i in range(0, len(events), size)
    ]


def _check(run: Running, truth: Truth) -> dict[str, int]:
    first, last = span(truth)
    return exactness.check(run.url("aggregator"), run.read_token, truth, first, last)


def _drive(
    run: Running, workload: Workload, size: int, connections: int
) -> tuple[LoadResult, float, float, dict[str, float]]:
    """POST the workload, wait until the rollups show it and every consumer has caught up.

    Returns the load, when its first request went out and when the last event
    became visible (time.perf_counter(): CLOCK_MONOTONIC, the same in the load
    client's process), and each process's CPU seconds over the run.
    """
    requests = posts(run.url("intake"), run.report_token, workload.events, size)
    first, last = workload.days()
    cpu_before = run.cpu_seconds()
    load = run_in_process(run.url("intake"), requests, connections=connections)
    visible = run.wait_visible(len(workload.events), first, last, timeout_s=1800)
    run.wait_settled(timeout_s=1800)
    cpu = {name: s - cpu_before.get(name, 0.0) for name, s in run.cpu_seconds().items()}
    return load, load.started, visible, cpu


def _per_event(cpu: dict[str, float], events: int) -> dict[str, float]:
    """Each process's CPU seconds as microseconds per event."""
    return {name: round(seconds / events * 1e6, 1) for name, seconds in cpu.items()}


def _rates(n: int, load: LoadResult, started: float, visible: float) -> dict[str, Any]:
    return {
        "visible_events_per_s": round(n / (visible - started)),
        "post_events_per_s": round(n / load.wall_s),
        "post_statuses": load.statuses,
        "client_cpu_share": round(load.cpu_share, 3),
    }


def phase_batched(sizes: Sizes) -> dict[str, Any]:
    """(2) batched end to end on SQLite, then reads at 200k and 1M events, then rebuild."""
    workload = build_workload(sizes.events, tag="batched", days=sizes.live_days)
    with running_stack() as run, RssSampler(run.pids()) as rss:
        load, started, visible, cpu = _drive(run, workload, sizes.batch_size, sizes.connections)
        figures = _rates(sizes.events, load, started, visible)
        figures["cpu_us_per_event"] = _per_event(cpu, sizes.events)
        figures["exactness_200k"] = _check(run, workload.truth)
        figures["reads_200k"] = measure_reads(
            run.url("aggregator"), run.read_token, sizes.read_requests
        )
        filling = time.perf_counter()
        truth = exactness.merged([workload.truth, fill(run, sizes)])
        figures["events_at_1m"] = sum(v for (_c, _d, m), v in truth.items() if m == "events")
        first, last = span(truth)
        filled = run.wait_visible(figures["events_at_1m"], first, last, timeout_s=1800)
        backfill = figures["events_at_1m"] - sizes.events
        figures["backfill_visible_events_per_s"] = round(backfill / (filled - filling))
        run.wait_settled(timeout_s=1800)
        figures["exactness_1m"] = _check(run, truth)
        figures["reads_1m"] = measure_reads(
            run.url("aggregator"), run.read_token, sizes.read_requests
        )
        figures |= phase_rebuild(run, figures["events_at_1m"])
    figures["peak_rss_mb"] = {k: round(v) for k, v in rss.peaks_mb.items()}
    return figures


def fill(run: Running, sizes: Sizes) -> Truth:
    """(5) publish what takes the stream up to ``million`` events; their truth."""
    count = sizes.million - sizes.events
    return publish_history(run.stack.bus_url, count, sizes.history_days, sizes.batch_size)


def phase_rebuild(run: Running, events: int) -> dict[str, Any]:
    """(6) ``zhibao aggregator rebuild`` of the whole stream into an empty database,
    then every counter of the rebuilt database compared with the live one's.

    As its help says ("service stopped"), the live aggregator is stopped first: the rebuild
    recreates its durable consumer, and a running aggregator would take (and
    skip, as already applied) part of what the rebuild replays.
    """
    run.stack.stop_service("aggregator")
    target = run.stack.data_dir / "rebuild.db"
    env = {
        **run.stack.env,
        "ZHIBAO_NATS_URL": run.stack.bus_url,  # a rebuild replays the stream as the operator
        "ZHIBAO_AGGREGATOR_DATABASE_URL": f"sqlite+aiosqlite:///{target}",
    }
    command = [sys.executable, "-m", "zhibao_cli", "aggregator"]
    subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
    started = time.perf_counter()
    subprocess.run([*command, "rebuild"], env=env, check=True, capture_output=True)  # noqa: S603
    rate = round(events / (time.perf_counter() - started))
    live = run.stack.data_dir / "aggregator.db"
    return {"rebuild_events_per_s": rate, **exactness.compare_counters(live, target)}


def phase_batched_postgres(sizes: Sizes, database_url: str) -> dict[str, Any]:
    """(2) the batched run again with the aggregator writing to PostgreSQL."""
    workload = build_workload(sizes.events, seed=11, tag="pg", days=sizes.live_days)
    with running_stack(database_url=database_url) as run, RssSampler(run.pids()) as rss:
        load, started, visible, cpu = _drive(run, workload, sizes.batch_size, sizes.connections)
        figures = _rates(sizes.events, load, started, visible)
        figures["cpu_us_per_event"] = _per_event(cpu, sizes.events)
        figures["exactness"] = _check(run, workload.truth)
    figures["peak_rss_mb"] = {k: round(v) for k, v in rss.peaks_mb.items()}
    return figures


def phase_single(sizes: Sizes, run: Running) -> dict[str, Any]:
    """(3) one event per POST over many connections, as gate devices send them."""
    workload = build_workload(sizes.single_events, seed=7, tag="single")
    load, started, visible, cpu = _drive(run, workload, 1, sizes.single_connections)
    return {
        **_rates(sizes.single_events, load, started, visible),
        "cpu_us_per_event": _per_event(cpu, sizes.single_events),
        "client_cpu_us_per_event": round(load.cpu_s / sizes.single_events * 1e6, 1),
        "p50_post_ms": round(percentile(load.latencies_ms, 50), 2),
        "p99_post_ms": round(percentile(load.latencies_ms, 99), 2),
        "exactness": _check(run, workload.truth),
    }
