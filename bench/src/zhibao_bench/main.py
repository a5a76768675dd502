"""``zhibao bench``: the reference limit and the whole pipeline, in one run.

Phases (see bench/RESULTS.md for what they mean and the history of results):
1. reference: nats-py alone; 2. end to end, batched (SQLite, then PostgreSQL);
3. end to end, single events; 4. latency under mixed load (see mixed.py);
5. rollup reads at 200k and 1M events; 6. rebuild; 7. peak resident memory.
Counts are checked exactly at every phase: ``lost`` and ``double_counted``
must be 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

from zhibao_bench.harness import CITY, DISTRICT, RssSampler, Running, running_stack
from zhibao_bench.loadclient import encode_get, encode_post, percentile, run_in_process
from zhibao_bench.mixed import MixedConfig, phase_mixed
from zhibao_bench.reference import measure_reference
from zhibao_bench.workload import build_workload
from zhibao_shared.events import CONTENT_TYPE_BATCH, bundle_payload, event_identity
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.pgserver import LocalPostgres, postgres_bin_dir
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject

PIPELINE = ("intake", "aggregator")


@dataclass(frozen=True)
class BenchConfig:
    """How big each phase is."""

    events: int = 200_000
    batch_size: int = 100
    single_events: int = 40_000
    read_requests: int = 2_000
    million: int = 1_000_000
    connections: int = 8
    single_connections: int = 64
    postgres: bool = True
    mixed: MixedConfig = field(default_factory=MixedConfig)
    output: Path = Path("bench/results.json")

    @classmethod
    def smoke(cls, output: Path) -> BenchConfig:
        """A few thousand events: checks the benchmark works and counts are exact."""
        return cls(
            events=3_000,
            single_events=1_000,
            read_requests=200,
            million=6_000,
            connections=4,
            single_connections=8,
            mixed=MixedConfig(rate=100, seconds=6, connections=4, reads_per_s=5),
            output=output,
        )


def _machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # Other work on the machine makes every figure noisier: the 1/5/15-minute
        # load averages when the run started (and, below, when it ended).
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def phase_reference(config: BenchConfig, payload: bytes) -> dict[str, Any]:
    """(1) nats-py publishing (acked) and a pull consumer fetching and acking."""
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp))
        server.start()
        try:
            result = asyncio.run(
                measure_reference(server.url, max(config.events // 2, 2000), payload)
            )
        finally:
            server.stop()
    return {
        "reference_events_per_s": round(result.events_per_s),
        "reference_publish_per_s": round(result.publish_per_s),
        "reference_consume_per_s": round(result.consume_per_s),
    }


def _posts(run: Running, events: list[dict[str, Any]], size: int) -> list[bytes]:
    url = run.url("intake")
    return [
        encode_post(
            url,
            "/v1/events",
            json.dumps(events[i : i + size]).encode(),
            run.report_token,
            CONTENT_TYPE_BATCH,
        )
        for i in range(0, len(events), size)
    ]


def _exactness(run: Running, expected_events: int, expected_fevers: int) -> dict[str, int]:
    counted = run.counted("events")
    fevers = run.counted("fevers")
    return {
        "lost": max(0, expected_events - counted) + max(0, expected_fevers - fevers),
        "double_counted": max(0, counted - expected_events) + max(0, fevers - expected_fevers),
    }


def phase_batched(config: BenchConfig, database_url: str | None) -> tuple[dict[str, Any], Running]:
    """(2) batched end to end; returns figures (and keeps nothing running)."""
    workload = build_workload(config.events, tag="batched")
    with running_stack(PIPELINE, database_url) as run, RssSampler(run.pids()) as rss:
        requests = _posts(run, workload.events, config.batch_size)
        started = time.perf_counter()
        load = run_in_process(run.url("intake"), requests, connections=config.connections)
        done = run.wait_counted(config.events, timeout_s=600)
        figures = {
            "events_per_s": round(config.events / (done - started)),
            "post_statuses": load.statuses,
            "client_cpu_share": round(load.cpu_share, 3),
            **_exactness(run, config.events, workload.fevers),
        }
        reads = phase_reads(config, run)
        figures |= {f"{k}_200k": v for k, v in reads.items()}
        figures |= phase_million(config, run)
        figures["rebuild_events_per_s"] = phase_rebuild(run)
    figures["peak_rss_mb"] = {k: round(v) for k, v in rss.peaks_mb.items()}
    return figures, run


@contextmanager
def local_postgres() -> Iterator[str | None]:
    """An asyncpg URL of a fresh local PostgreSQL, or None when its binaries are missing."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="zhibao-bench-pg-") as root:
        server = LocalPostgres(bin_dir, free_port(), Path(root))
        server.start()
        try:
            base = server.admin_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            yield base
        finally:
            server.stop()


def phase_batched_postgres(config: BenchConfig) -> dict[str, Any]:
    """(2) the batched run again with the aggregator writing to PostgreSQL."""
    with local_postgres() as url:
        if url is None:
            return {"e2e_events_per_s_postgres": None, "postgres": "no PostgreSQL binaries"}
        workload = build_workload(config.events, seed=11, tag="pg")
        with running_stack(PIPELINE, url) as run, RssSampler(run.pids()) as rss:
            requests = _posts(run, workload.events, config.batch_size)
            started = time.perf_counter()
            run_in_process(run.url("intake"), requests, connections=config.connections)
            done = run.wait_counted(config.events, timeout_s=900)
            exact = _exactness(run, config.events, workload.fevers)
        return {
            "e2e_events_per_s_postgres": round(config.events / (done - started)),
            "postgres_lost": exact["lost"],
            "postgres_double_counted": exact["double_counted"],
            "postgres_peak_rss_mb": {k: round(v) for k, v in rss.peaks_mb.items()},
        }


def phase_single(config: BenchConfig) -> dict[str, Any]:
    """(3) one event per POST over many connections, as gate devices send them."""
    workload = build_workload(config.single_events, seed=7, tag="single")
    with running_stack(PIPELINE) as run:
        requests = _posts(run, workload.events, 1)
        started = time.perf_counter()
        load = run_in_process(run.url("intake"), requests, connections=config.single_connections)
        run.wait_counted(config.single_events, timeout_s=600)
        return {
            "single_event_per_s": round(config.single_events / load.wall_s),
            "single_event_p50_post_ms": round(percentile(load.latencies_ms, 50), 2),
            "single_event_p99_post_ms": round(percentile(load.latencies_ms, 99), 2),
            "single_client_cpu_share": round(load.cpu_share, 3),
            "single_end_to_end_s": round(time.perf_counter() - started, 2),
            "single_post_statuses": load.statuses,
        }


def phase_reads(config: BenchConfig, run: Running) -> dict[str, float]:
    """(5) p50/p99 of rollup reads at district and city level, once every consumer is idle."""
    settled_s = run.wait_settled(timeout_s=1800)
    url = run.url("aggregator")
    paths = [f"/v1/units/{DISTRICT}/rollup", f"/v1/units/{CITY}/rollup"]
    requests = [encode_get(url, paths[i % 2], run.read_token) for i in range(config.read_requests)]
    load = run_in_process(url, requests, connections=1)
    return {
        "p50_read_ms": round(percentile(load.latencies_ms, 50), 2),
        "p99_read_ms": round(percentile(load.latencies_ms, 99), 2),
        "settle_s": round(settled_s, 1),
    }


async def _publish_direct(url: str, count: int, offset: int, per_message: int) -> None:
    """Publish as intake does for batches: bundles of ``per_message`` events of one district."""
    client = await nats.connect(url)
    try:
        js = client.jetstream(publish_async_max_pending=20_000)
        workload = build_workload(count, seed=offset, tag="direct")
        pending = []
        for start in range(0, len(workload.events), per_message):
            run = [_published(event) for event in workload.events[start : start + per_message]]
            identities = json.dumps(
                [event_identity(e["subject"], e["source"], e["id"]) for e in run]
            ).encode()
            pending.append(
                await js.publish_async(
                    bundle_subject(DISTRICT),
                    bundle_payload([json.dumps(e).encode() for e in run]),
                    stream=EVENTS_STREAM,
                    headers={"Nats-Msg-Id": f"bundle {hashlib.sha256(identities).hexdigest()}"},
                )
            )
            if len(pending) >= 1_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await client.close()


def _published(event: dict[str, Any]) -> dict[str, Any]:
    """The event as intake publishes it (attributed, person pseudonymised)."""
    event = {**event, "reporter": "bench", "receivedat": datetime.now(UTC).isoformat()}
    if "person" in event["data"]:
        pid = f"{hash(event['id']) & (2**128 - 1):032x}"
        event["data"] = {**event["data"], "person": {"pid": pid}}
    return event


def phase_million(config: BenchConfig, run: Running) -> dict[str, Any]:
    """(5, continued) fill the stream up to ``million`` events straight into JetStream."""
    already = run.counted("events")
    extra = max(0, config.million - already)
    asyncio.run(_publish_direct(run.stack.bus_url, extra, 99, config.batch_size))
    run.wait_counted(already + extra, timeout_s=1800)
    reads = phase_reads(config, run)
    return {
        "p50_read_ms_1m": reads["p50_read_ms"],
        "p99_read_ms_1m": reads["p99_read_ms"],
        "settle_s_1m": reads["settle_s"],
        "events_at_1m": already + extra,
    }


def phase_rebuild(run: Running) -> int:
    """(6) ``zhibao aggregator rebuild`` of the whole stream into an empty database."""
    expected = run.counted("events")
    target = run.stack.data_dir / "rebuild.db"
    env = {
        **run.stack.env,
        "ZHIBAO_AGGREGATOR_DATABASE_URL": f"sqlite+aiosqlite:///{target}",
        # a rebuild deletes the aggregator's consumer: the operator's action
        "ZHIBAO_NATS_URL": run.stack.bus_url,
    }
    command = [sys.executable, "-m", "zhibao_cli", "aggregator"]
    subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
    started = time.perf_counter()
    subprocess.run([*command, "rebuild"], env=env, check=True, capture_output=True)  # noqa: S603
    return round(expected / (time.perf_counter() - started))


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run every phase and write the JSON results."""
    sample = build_workload(1).events[0]
    payload = json.dumps({**sample, "reporter": "bench", "receivedat": sample["time"]}).encode()
    results: dict[str, Any] = {
        "machine": _machine(),
        "config": {
            "events": config.events,
            "batch_size": config.batch_size,
            "single_events": config.single_events,
            "connections": config.connections,
            "mixed_rate": config.mixed.rate,
            "mixed_seconds": config.mixed.seconds,
            "mixed_connections": config.mixed.connections,
        },
    }
    results |= phase_reference(config, payload)
    batched, _ = phase_batched(config, None)
    results |= {
        "e2e_events_per_s": batched["events_per_s"],
        "ratio": round(batched["events_per_s"] / results["reference_events_per_s"], 3),
        "batched": batched,
    }
    results |= {
        k: batched[k]
        for k in (
            "p99_read_ms_200k",
            "p99_read_ms_1m",
            "rebuild_events_per_s",
            "peak_rss_mb",
            "lost",
            "double_counted",
        )
    }
    if config.postgres:
        results |= phase_batched_postgres(config)
        results["lost"] += results.get("postgres_lost") or 0
        results["double_counted"] += results.get("postgres_double_counted") or 0
    results |= phase_single(config)
    mixed = phase_mixed(config.mixed)
    results |= mixed
    results["lost"] += mixed["mixed_lost"]
    results["double_counted"] += mixed["mixed_double_counted"]
    for name, peak in mixed["mixed_peak_rss_mb"].items():
        results["peak_rss_mb"][name] = max(results["peak_rss_mb"].get(name, 0), peak)
    results["events"] = config.events
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["date"] = results["machine"]["date"]
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results
