"""Rollup read latency at every level: community, street, district, city and province.

Reads are today's rollup of a unit (what a command centre shows), cycling
through every unit of each level, one request at a time so each latency is
the lookup's alone. Used for Zhibao's aggregator and the plain baseline alike.
"""

from __future__ import annotations

from typing import Any

from zhibao_bench.loadclient import encode_get, percentile, run_in_process
from zhibao_bench.workload import communities
from zhibao_shared.hierarchy import Level, unit_at

LEVELS = tuple(level.value for level in reversed(Level))


def units_by_level() -> dict[str, list[str]]:
    """Every unit code of each level (codes nest by prefix: 12, 9, 6, 4 and 2 digits)."""
    codes = communities()
    return {level.value: sorted({unit_at(c, level) for c in codes}) for level in reversed(Level)}


def measure_reads(url: str, token: str, requests: int) -> dict[str, Any]:
    """p50/p99 per level of ``requests`` reads (spread evenly over the levels).

    ``p99_read_ms`` is the worst level's p99 (the target holds at every level).
    """
    units = units_by_level()
    paths = []
    for i in range(max(len(LEVELS), requests)):
        level = LEVELS[i % len(LEVELS)]
        codes = units[level]
        paths.append(f"/v1/units/{codes[i // len(LEVELS) % len(codes)]}/rollup")
    load = run_in_process(url, [encode_get(url, p, token) for p in paths], connections=1)
    by_level: dict[str, dict[str, float]] = {}
    for j, level in enumerate(LEVELS):
        latencies = load.latencies_ms[j :: len(LEVELS)]
        by_level[level] = {
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
        }
    return {
        "p50_read_ms": max(v["p50_ms"] for v in by_level.values()),
        "p99_read_ms": max(v["p99_ms"] for v in by_level.values()),
        "read_ms_by_level": by_level,
        "read_statuses": load.statuses,
    }
