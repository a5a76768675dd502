"""(9) The plain baseline, driven like Zhibao: the same events, the same load client.

The plain service (plain.py) runs as its own process on the benchmark's
PostgreSQL, in a database of its own. A report is visible once its POST is
answered (it is committed), so the batched rate is events over the load's
wall time. Reads are measured at 200k and at 1M events (the fill goes into
the table directly, with the same events Zhibao's stream was filled with).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import psutil

from zhibao_bench.fill import chunks
from zhibao_bench.harness import process_cpu_s
from zhibao_bench.loadclient import percentile, run_in_process
from zhibao_bench.phases import Sizes, posts
from zhibao_bench.plain import COLUMNS, row
from zhibao_bench.reads import measure_reads
from zhibao_bench.workload import build_workload
from zhibao_shared.natsserver import die_with_parent, free_port, wait_for_port

#: Most reads the plain baseline is measured with (see :func:`plain_reads`).
PLAIN_READS = 400


@contextmanager
def plain_service(admin_dsn: str, database: str) -> Iterator[tuple[str, str, int, str]]:
    """A fresh database and the plain service on it: (url, token, pid, dsn)."""
    asyncio.run(_execute(admin_dsn, f'CREATE DATABASE "{database}"'))
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{database}"
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**os.environ, "PLAIN_DSN": dsn, "PLAIN_PORT": str(port), "PLAIN_TOKEN": token}
    process = subprocess.Popen(
        [sys.executable, "-m", "zhibao_bench.plain"], env=env, preexec_fn=die_with_parent
    )
    try:
        if not wait_for_port("127.0.0.1", port, 60):
            raise RuntimeError("the plain baseline did not start")
        yield f"http://127.0.0.1:{port}", token, process.pid, dsn
    finally:
        process.terminate()
        process.wait(20)


async def _execute(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM reports"))
    finally:
        await conn.close()


async def _copy(dsn: str, events: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "reports", records=[row(e) for e in events], columns=COLUMNS
        )
    finally:
        await conn.close()


def postgres_cpu_s(data_dir_pid: int) -> float:
    """CPU seconds of the postmaster and its current backends."""
    try:
        tree = [psutil.Process(data_dir_pid), *psutil.Process(data_dir_pid).children(True)]
    except psutil.Error:
        return 0.0
    return sum(process_cpu_s(p.pid) for p in tree)


def plain_reads(sizes: Sizes) -> int:
    """How many reads the plain baseline gets: its GROUP BY takes of the order of a second
    at 1M events, so Zhibao's 2,000 would take half an hour; 400 (100 per level) still
    give each level's p99 (of 100: the second-worst)."""
    return min(sizes.read_requests, PLAIN_READS)


def phase_plain(sizes: Sizes, admin_dsn: str, postmaster: int) -> dict[str, Any]:
    """The plain baseline: batched, reads at 200k and 1M, then single events."""
    out: dict[str, Any] = {}
    with plain_service(admin_dsn, "plain_batched") as (url, token, pid, dsn):
        workload = build_workload(sizes.events, tag="batched", days=sizes.live_days)
        requests = posts(url, token, workload.events, sizes.batch_size)
        before = process_cpu_s(pid), postgres_cpu_s(postmaster)
        load = run_in_process(url, requests, connections=sizes.connections)
        service_s = process_cpu_s(pid) - before[0]
        postgres_s = postgres_cpu_s(postmaster) - before[1]
        committed = asyncio.run(_count(dsn))
        out["batched"] = {
            "events_per_s": round(sizes.events / load.wall_s),
            "post_statuses": load.statuses,
            "client_cpu_share": round(load.cpu_share, 3),
            "cpu_us_per_event": {
                "plain": round(service_s / sizes.events * 1e6, 1),
                "postgres": round(postgres_s / sizes.events * 1e6, 1),
            },
            "lost": max(0, sizes.events - committed),
            "double_counted": max(0, committed - sizes.events),
        }
        out["reads_200k"] = measure_reads(url, token, plain_reads(sizes))
        for chunk in chunks(max(0, sizes.million - sizes.events), sizes.history_days):
            asyncio.run(_copy(dsn, chunk.events))
        asyncio.run(_execute(dsn, "ANALYZE reports"))
        out["events_at_1m"] = asyncio.run(_count(dsn))
        out["reads_1m"] = measure_reads(url, token, plain_reads(sizes))
    out["single"] = _single(sizes, admin_dsn)
    return out


def _single(sizes: Sizes, admin_dsn: str) -> dict[str, Any]:
    with plain_service(admin_dsn, "plain_single") as (url, token, _pid, dsn):
        workload = build_workload(sizes.single_events, seed=7, tag="single")
        requests = posts(url, token, workload.events, 1)
        load = run_in_process(url, requests, connections=sizes.single_connections)
        committed = asyncio.run(_count(dsn))
        return {
            "events_per_s": round(sizes.single_events / load.wall_s),
            "p50_post_ms": round(percentile(load.latencies_ms, 50), 2),
            "p99_post_ms": round(percentile(load.latencies_ms, 99), 2),
            "post_statuses": load.statuses,
            "lost": max(0, sizes.single_events - committed),
            "double_counted": max(0, committed - sizes.single_events),
        }
