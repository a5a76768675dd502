"""``zhibao bench``: run the benchmark and print a table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

ROWS = (
    ("reference_events_per_s", "(1) reference: nats-py publish_async + pull consumer, events/s"),
    ("visible_events_per_s", "(2) batched, all services, visible in the rollups, events/s"),
    ("post_events_per_s", "(2) batched, all services, POSTs answered, events/s"),
    ("ratio_visible", "(2) batched visible / reference"),
    ("plain_events_per_s", "(9) plain baseline, batched, committed, events/s"),
    ("ratio_plain", "(2) batched visible / plain baseline"),
    ("visible_events_per_s_postgres", "(2) batched, aggregator on PostgreSQL, visible, events/s"),
    ("cpu_us_per_event", "(2) CPU microseconds per event, by process"),
    ("single_event_per_s", "(3) single events, visible, events/s"),
    ("plain_single_event_per_s", "(9) plain baseline, single events, events/s"),
    ("single_event_p99_post_ms", "(3) single events, POST p99 ms"),
    ("single_cpu_us_per_event", "(3) single events, CPU microseconds per event, by process"),
    ("mixed_achieved_per_s", "(4) mixed load: single events achieved, events/s"),
    ("p99_rollup_ms", "(4) mixed load: POST -> rollup published, p99 ms"),
    ("p99_alert_ms", "(4) mixed load: POST of a confirmed case -> webhook, p99 ms"),
    ("mixed_cpu_cores", "(4) mixed load: cores kept busy, by process"),
    ("mixed_machine_busy_cores", "(4) mixed load: cores the machine kept busy"),
    ("p99_read_ms_200k", "(5) rollup read p99 ms at 200k events, worst level"),
    ("plain_p99_read_ms_200k", "(9) plain baseline read p99 ms at 200k, worst level"),
    ("p99_read_ms_1m", "(5) rollup read p99 ms at 1M events, worst level"),
    ("plain_p99_read_ms_1m", "(9) plain baseline read p99 ms at 1M, worst level"),
    ("backfill_visible_events_per_s", "(5) 400-day history published to the stream, visible, ev/s"),
    ("rebuild_events_per_s", "(6) rebuild, events/s"),
    ("rebuild_ratio_live", "(6) rebuild / batched visible"),
    ("rebuild_counters_differing", "(6) rebuilt counters differing from the live ones"),
    ("tasks_issue_s", "(10) tasks: all issued in one request, s"),
    (
        "tasks_done_visible_s",
        "(10) tasks: results through intake until all done in rollups, s",
    ),
    ("tasks_results_per_s", "(10) tasks: results visible as done, per s"),
    ("per_unit_daily_work_us", "(11) per-day work per community, µs, by job"),
    ("peak_rss_mb", "(7) peak resident memory, MB"),
    ("page_load_ms", "(12) page, whole city: navigation -> overview drawn, ms"),
    ("page_update_ms", "(12) page, whole city: live rollup -> overview redrawn, ms"),
    ("page_update_e2e_ms", "(12) page, whole city: POST -> overview redrawn, ms"),
    ("alerts_idle_cpu_pct", "(8) alerts idle with open alerts, % of a core"),
    ("lost", "events lost"),
    ("double_counted", "events double counted"),
    ("figures_wrong", "figures (unit, day, metric) differing from the truth"),
)


def table(results: dict[str, Any]) -> str:
    """The results as an aligned two-column table."""
    lines = [f"{label:<64} {results.get(key, 'not measured')}" for key, label in ROWS]
    return "\n".join(lines)


def bench(
    events: Annotated[int, typer.Option(help="Events for the batched run")] = 200_000,
    batch_size: Annotated[int, typer.Option(help="Events per POST in the batched run")] = 100,
    smoke: Annotated[bool, typer.Option(help="A few thousand events: checks it works")] = False,
    output: Annotated[Path, typer.Option(help="Where to write the JSON")] = Path(
        "bench/results.json"
    ),
    page_only: Annotated[
        bool,
        typer.Option(help="Only the page's load and update times, merged into --output"),
    ] = False,
) -> None:
    """Measure the machine's reference limit and the whole pipeline against it."""
    # Here, not at the top: every ``zhibao`` command (a service's start too) loads this
    # module, and the benchmark's own imports took 1.45 s of each.
    from zhibao_bench.main import BenchConfig, run_bench, run_page_only

    if page_only:
        page = run_page_only(BenchConfig(output=output))["page"]
        rows = [f"{label:<64} {page.get(key)}" for key, label in ROWS if key.startswith("page_")]
        typer.echo(page.get("page_skipped") or "\n".join(rows))
        typer.echo(f"\nwritten to {output}")
        return
    if smoke:
        config = BenchConfig.smoke(output)
    else:
        sizes = replace(BenchConfig().sizes, events=events, batch_size=batch_size)
        config = BenchConfig(sizes=sizes, output=output)
    results = run_bench(config)
    typer.echo(table(results))
    typer.echo(f"\nwritten to {config.output}")
    if (
        any(results[k] for k in ("lost", "double_counted", "figures_wrong"))
        or results["rebuild_counters_differing"]
    ):
        raise typer.Exit(1)
