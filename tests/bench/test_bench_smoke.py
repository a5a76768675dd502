"""The benchmark in smoke mode: every phase runs end to end and every figure is exact.

Not a timed test: no figure is compared with a threshold here; the targets
are checked by running ``zhibao bench`` (see bench/RESULTS.md).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from zhibao_bench.main import BenchConfig, run_bench
from zhibao_bench.reads import LEVELS
from zhibao_cli.stack import SERVICES

#: The keys of the performance issue (results.json), and the plain baseline's beside them.
REQUIRED_KEYS = {
    "ratio_visible",
    "visible_events_per_s",
    "post_events_per_s",
    "plain_events_per_s",
    "ratio_plain",
    "cpu_us_per_event",
    "alerts_idle_cpu_pct",
    "single_event_per_s",
    "plain_single_event_per_s",
    "p99_read_ms_200k",
    "p99_read_ms_1m",
    "plain_p99_read_ms_200k",
    "plain_p99_read_ms_1m",
    "p99_rollup_ms",
    "p99_alert_ms",
    "reference_events_per_s",
    "single_event_p99_post_ms",
    "single_cpu_us_per_event",
    "visible_events_per_s_postgres",
    "mixed_achieved_per_s",
    "rebuild_events_per_s",
    "peak_rss_mb",
    "backfill_visible_events_per_s",
    "tasks_issue_s",
    "tasks_done_visible_s",
    "tasks_results_per_s",
    "page_load_ms",
    "page_update_ms",
    "per_unit_daily_work_us",
    "province_extrapolation",
    "lost",
    "double_counted",
    "figures_wrong",
    "rebuild_counters_differing",
    "machine",
    "date",
}

SERVICE_NAMES = {spec.name for spec in SERVICES}


def _exact(check: dict[str, int]) -> None:
    assert check["figures_checked"] > 0
    assert check["figures_wrong"] == check["lost"] == check["double_counted"] == 0, check


# every phase starts its own stack of services (the response loop's too): more than the
# suite's default 300 s guard against hangs on a busy two-core machine
@pytest.mark.timeout(900)
def test_smoke_benchmark_measures_every_phase_and_every_figure_is_exact(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    config = BenchConfig.smoke(output)
    shared_tmp = stat.S_IMODE(os.stat(tempfile.gettempdir()).st_mode)
    results = run_bench(config)
    assert output.exists()
    # the benchmark leaves the machine's temporary folder as it found it (others use it)
    assert stat.S_IMODE(os.stat(tempfile.gettempdir()).st_mode) == shared_tmp
    assert results.keys() >= REQUIRED_KEYS
    missing = {k for k in REQUIRED_KEYS if results[k] is None}
    assert not missing, (missing, results.get("postgres_missing"))
    sizes = config.sizes
    batched: dict[str, Any] = results["batched"]
    # every phase ran every service, and every service's CPU per event was read
    assert set(batched["peak_rss_mb"]) == SERVICE_NAMES
    assert set(results["cpu_us_per_event"]) == {*SERVICE_NAMES, "nats-server"}
    cpu = results["cpu_us_per_event"]
    assert all(cpu[name] > 0 for name in ("intake", "aggregator", "alerts", "nats-server")), cpu
    assert all(v >= 0 for v in cpu.values())  # a service that reads no events may spend ~0
    single_cpu = results["single_cpu_us_per_event"]
    assert set(single_cpu) == {*SERVICE_NAMES, "nats-server"}
    assert all(single_cpu[name] > 0 for name in ("intake", "aggregator", "alerts")), single_cpu
    assert batched["post_statuses"] == {202: sizes.events // sizes.batch_size}
    # exactness: every phase, every level, every figure, and the rebuild equals live
    for check in (
        batched["exactness_200k"],
        batched["exactness_1m"],
        results["postgres"]["exactness"],
        results["single"]["exactness"],
        results["mixed"]["mixed_exactness"],
    ):
        _exact(check)
    assert results["lost"] == results["double_counted"] == results["figures_wrong"] == 0
    assert batched["events_at_1m"] == sizes.million
    assert batched["rebuild_counters"] > 0
    assert results["rebuild_counters_differing"] == 0
    # reads at every level, at both sizes, for Zhibao and the plain baseline
    for reads in (
        batched["reads_200k"],
        batched["reads_1m"],
        results["plain"]["reads_200k"],
        results["plain"]["reads_1m"],
    ):
        assert set(reads["read_ms_by_level"]) == set(LEVELS)
        assert reads["read_statuses"] == {200: sizes.read_requests}
    # the plain baseline got the same events and kept every one exactly once
    plain = results["plain"]
    assert plain["batched"]["post_statuses"] == {202: sizes.events // sizes.batch_size}
    assert plain["batched"]["lost"] == plain["batched"]["double_counted"] == 0
    assert plain["events_at_1m"] == sizes.million
    assert plain["single"]["lost"] == plain["single"]["double_counted"] == 0
    # mixed load: every POST accepted, every rollup seen, every confirmed case paged
    mixed = results["mixed"]
    assert mixed["mixed_post_statuses"] == {202: 600}
    assert mixed["mixed_history_events"] == sizes.million, "the load met a filled stream"
    assert mixed["mixed_rollup_never_seen"] == 0
    assert mixed["mixed_alerts_delivered"] == mixed["mixed_cases"] == 3
    assert mixed["mixed_publish_interval_s"] == "default"
    assert mixed["mixed_live_status"] == 200
    assert set(mixed["mixed_read_statuses"]) == {200}
    # the cores each process kept busy during the load: every service and nats-server,
    # together no more than the machine as a whole
    cores = mixed["mixed_cpu_cores"]
    assert set(cores) == SERVICE_NAMES | {"nats-server"}
    assert cores["intake"] > 0, cores
    assert sum(cores.values()) <= mixed["mixed_machine_busy_cores"] * 1.05 + 0.05
    assert mixed["mixed_machine_busy_cores"] <= mixed["mixed_machine_cores"] * 1.05
    # the response loop: every task issued, every result accepted, all done in the rollups
    tasks = results["tasks"]
    assert tasks["tasks"] == config.tasks
    assert tasks["tasks_result_statuses"] == {202: config.tasks // sizes.batch_size}
    assert tasks["tasks_lost"] == tasks["tasks_double_counted"] == 0
    assert tasks["tasks_figures_wrong"] == 0
    assert tasks["tasks_communities_checked"] > 0
    # the alerts service was measured at rest with every alert open
    idle = results["idle"]
    assert idle["alerts_idle_open_cases"] == config.idle_alerts
    assert idle["alerts_idle_open"] >= config.idle_alerts
    assert idle["alerts_idle_post_statuses"] == {202: 1}
    assert idle["alerts_idle_pending_notifications"] == 0, "measured while it still paged"
