"""``zhibao bench``: the reference limit, the whole system and a plain baseline, in one run.

Phases (see bench/RESULTS.md for what they mean and the history of results):
1. reference: nats-py alone; 2. end to end, batched (SQLite, then PostgreSQL);
3. end to end, single events; 4. latency under mixed load (see mixed.py);
5. rollup reads at 200k and 1M events over a 400-day history; 6. rebuild,
compared with the live counters; 7. peak resident memory; 8. the alerts
service idle with 1,000 open alerts; 9. the plain baseline (baseline.py);
10. the task loop; 11. the per-day work that grows with the units, per unit and
extrapolated to a province (per_unit.py; in-process, on the services' storage); 12. the
command centre's page with the whole city in Chromium (page_phase.py).
Every Zhibao phase runs every service as ``zhibao up`` does, and every
phase checks its figures exactly at every level: ``lost``,
``double_counted`` and ``figures_wrong`` must be 0.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zhibao_bench.baseline import phase_plain
from zhibao_bench.harness import running_stack
from zhibao_bench.idle import phase_alerts_idle
from zhibao_bench.mixed import MixedConfig, phase_mixed
from zhibao_bench.page_phase import phase_page
from zhibao_bench.per_unit import phase_per_unit
from zhibao_bench.phases import (
    Sizes,
    phase_batched,
    phase_batched_postgres,
    phase_reference,
    phase_single,
)
from zhibao_bench.tasks_phase import phase_tasks
from zhibao_bench.workload import build_workload
from zhibao_shared.natsserver import free_port
from zhibao_shared.pgserver import LocalPostgres, postgres_bin_dir


@dataclass(frozen=True)
class BenchConfig:
    """How big each phase is."""

    sizes: Sizes = field(
        default_factory=lambda: Sizes(
            events=200_000,
            batch_size=100,
            single_events=40_000,
            read_requests=2_000,
            million=1_000_000,
            connections=8,
            single_connections=64,
            history_days=400,
        )
    )
    mixed: MixedConfig = field(default_factory=MixedConfig)
    #: Tasks issued in one request, then answered through intake (the response loop).
    tasks: int = 10_000
    idle_alerts: int = 1_000
    idle_seconds: float = 20.0
    #: Passes of each per-unit job (their median is taken).
    per_unit_repeats: int = 5
    #: Page loads and live updates timed in Chromium (medians are reported).
    page_rounds: int = 5
    output: Path = Path("bench/results.json")

    @classmethod
    def smoke(cls, output: Path) -> BenchConfig:
        """Every phase on a few thousand events: checks the benchmark works and counts
        are exact (a 30-day history keeps the exactness checks to one request each)."""
        sizes = Sizes(
            events=3_000,
            batch_size=100,
            single_events=600,
            read_requests=80,
            million=6_000,
            connections=4,
            single_connections=8,
            history_days=30,
        )
        return cls(
            sizes=sizes,
            mixed=MixedConfig(
                rate=100,
                seconds=6,
                connections=4,
                reads_per_s=5,
                history_events=sizes.million,
                history_days=sizes.history_days,
            ),
            tasks=200,
            idle_alerts=40,
            idle_seconds=2.0,
            per_unit_repeats=2,
            page_rounds=2,
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


@contextmanager
def local_postgres() -> Iterator[tuple[str, int] | None]:
    """A fresh local PostgreSQL: (superuser DSN, postmaster pid); None without binaries."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="zhibao-bench-pg-") as root:
        server = LocalPostgres(bin_dir, free_port(), Path(root))
        server.start()
        try:
            postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            yield server.admin_dsn, postmaster
        finally:
            server.stop()


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _exactness(results: dict[str, Any]) -> dict[str, int]:
    """The sum of every phase's exactness check."""
    checks = [
        results["batched"]["exactness_200k"],
        results["batched"]["exactness_1m"],
        results["single"]["exactness"],
        results["mixed"]["mixed_exactness"],
    ]
    if results.get("postgres"):
        checks.append(results["postgres"]["exactness"])
    out = {
        k: sum(c[k] for c in checks)
        for k in ("lost", "double_counted", "figures_wrong", "figures_checked")
    }
    tasks = results["tasks"]
    out["lost"] += tasks["tasks_lost"]
    out["double_counted"] += tasks["tasks_double_counted"]
    out["figures_wrong"] += tasks["tasks_figures_wrong"]
    out["rebuild_counters_differing"] = results["batched"]["rebuild_counters_differing"]
    return out


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's keys, from the phases' figures."""
    batched, single, plain = results["batched"], results["single"], results.get("plain")
    plain_rate = plain["batched"]["events_per_s"] if plain else None
    peaks: dict[str, int] = {}
    measured = [batched["peak_rss_mb"], results["mixed"]["mixed_peak_rss_mb"]]
    if results.get("postgres"):
        measured.append(results["postgres"]["peak_rss_mb"])
    for phase in measured:
        for name, mb in phase.items():
            peaks[name] = max(peaks.get(name, 0), mb)
    return {
        "visible_events_per_s": batched["visible_events_per_s"],
        "post_events_per_s": batched["post_events_per_s"],
        "ratio_visible": _ratio(batched["visible_events_per_s"], results["reference_events_per_s"]),
        "plain_events_per_s": plain_rate,
        "ratio_plain": _ratio(batched["visible_events_per_s"], plain_rate),
        "visible_events_per_s_postgres": (results.get("postgres") or {}).get(
            "visible_events_per_s"
        ),
        "cpu_us_per_event": batched["cpu_us_per_event"],
        "alerts_idle_cpu_pct": results["idle"]["alerts_idle_cpu_pct"],
        "single_event_per_s": single["visible_events_per_s"],
        "single_post_per_s": single["post_events_per_s"],
        "single_event_p99_post_ms": single["p99_post_ms"],
        "single_cpu_us_per_event": single["cpu_us_per_event"],
        "plain_single_event_per_s": plain["single"]["events_per_s"] if plain else None,
        "ratio_single_plain": _ratio(
            single["visible_events_per_s"], plain["single"]["events_per_s"] if plain else None
        ),
        "p99_read_ms_200k": batched["reads_200k"]["p99_read_ms"],
        "p99_read_ms_1m": batched["reads_1m"]["p99_read_ms"],
        "plain_p99_read_ms_200k": plain["reads_200k"]["p99_read_ms"] if plain else None,
        "plain_p99_read_ms_1m": plain["reads_1m"]["p99_read_ms"] if plain else None,
        "mixed_achieved_per_s": results["mixed"]["mixed_achieved_per_s"],
        "p99_rollup_ms": results["mixed"]["p99_rollup_ms"],
        "p99_alert_ms": results["mixed"]["p99_alert_ms"],
        "mixed_cpu_cores": results["mixed"]["mixed_cpu_cores"],
        "mixed_machine_busy_cores": results["mixed"]["mixed_machine_busy_cores"],
        "backfill_visible_events_per_s": batched["backfill_visible_events_per_s"],
        "rebuild_events_per_s": batched["rebuild_events_per_s"],
        "rebuild_ratio_live": _ratio(
            batched["rebuild_events_per_s"], batched["visible_events_per_s"]
        ),
        "tasks_issue_s": results["tasks"]["tasks_issue_s"],
        "tasks_done_visible_s": results["tasks"]["tasks_done_visible_s"],
        "tasks_results_per_s": results["tasks"]["tasks_results_per_s"],
        "per_unit_daily_work_us": results["per_unit"]["per_unit_daily_work_us"],
        "province_extrapolation": results["per_unit"]["province_extrapolation"],
        "peak_rss_mb": peaks,
        **page_keys(results["page"]),
        **_exactness(results),
    }


def page_keys(page: dict[str, Any]) -> dict[str, Any]:
    """The page's headline keys (None, with the reason beside them, when it was skipped)."""
    keys = ("page_load_ms", "page_update_ms", "page_update_e2e_ms")
    return {k: page.get(k) for k in keys} | (
        {"page_skipped": page["page_skipped"]} if "page_skipped" in page else {}
    )


def run_page_only(config: BenchConfig) -> dict[str, Any]:
    """Only phase 12, its keys merged into the results already at ``config.output``."""
    output = config.output
    results: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    results["page"] = phase_page(config.page_rounds)
    results.pop("page_skipped", None)
    results |= page_keys(results["page"])
    results["page"]["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["page"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return results


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run every phase and write the JSON results."""
    sizes = config.sizes
    sample = build_workload(1).events[0]
    payload = json.dumps({**sample, "reporter": "bench", "receivedat": sample["time"]}).encode()
    results: dict[str, Any] = {
        "machine": _machine(),
        "config": {
            **asdict(sizes),
            "mixed": asdict(config.mixed),
            "idle_alerts": config.idle_alerts,
            "idle_seconds": config.idle_seconds,
            "per_unit_repeats": config.per_unit_repeats,
        },
    }
    results |= phase_reference(sizes.events, payload)
    results["batched"] = phase_batched(sizes)
    with local_postgres() as postgres:
        if postgres is None:
            results["postgres"] = results["plain"] = None
            results["postgres_missing"] = "no PostgreSQL binaries: no PostgreSQL phase, no plain"
        else:
            dsn, postmaster = postgres
            url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            results["postgres"] = phase_batched_postgres(sizes, url)
            results["plain"] = phase_plain(sizes, dsn, postmaster)
    with running_stack() as run:  # the alerts service at rest after the single events
        results["single"] = phase_single(sizes, run)
        results["idle"] = phase_alerts_idle(run, config.idle_alerts, config.idle_seconds)
    with running_stack() as run:
        results["tasks"] = phase_tasks(run, config.tasks, sizes.batch_size)
    results["mixed"] = phase_mixed(config.mixed)
    results["per_unit"] = phase_per_unit(config.per_unit_repeats)
    results["page"] = phase_page(config.page_rounds)
    results |= _headline(results)
    results["events"] = sizes.events
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["date"] = results["machine"]["date"]
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return results
