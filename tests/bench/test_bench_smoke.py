"""The benchmark in smoke mode: it runs end to end and every count is exact.

Not a timed test: no figure is compared with a threshold here; the targets
are checked by running ``zhibao bench`` (see bench/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

from zhibao_bench.main import BenchConfig, run_bench

REQUIRED_KEYS = {
    "reference_events_per_s",
    "e2e_events_per_s",
    "ratio",
    "single_event_per_s",
    "single_event_p99_post_ms",
    "e2e_events_per_s_postgres",
    "mixed_achieved_per_s",
    "p99_rollup_ms",
    "p99_alert_ms",
    "p99_read_ms_200k",
    "p99_read_ms_1m",
    "rebuild_events_per_s",
    "peak_rss_mb",
    "events",
    "lost",
    "double_counted",
    "machine",
    "date",
}


def test_smoke_benchmark_counts_every_event_exactly_once(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    results = run_bench(BenchConfig.smoke(output))
    assert output.exists()
    assert results.keys() >= REQUIRED_KEYS
    assert results["lost"] == 0
    assert results["double_counted"] == 0
    assert results["batched"]["post_statuses"] == {202: 30}
    assert set(results["peak_rss_mb"]) == {"intake", "aggregator", "alerts"}
    assert results["mixed_post_statuses"] == {202: 600}
    assert results["mixed_lost"] == results["mixed_double_counted"] == 0
    assert results["mixed_rollup_never_seen"] == 0
    assert results["mixed_alerts_delivered"] == results["mixed_cases"] == 3
    assert results["mixed_live_status"] == 200
    assert set(results["mixed_read_statuses"]) == {200}
    assert results["e2e_events_per_s_postgres"] is not None, results.get("postgres")
