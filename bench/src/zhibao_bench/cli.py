"""``zhibao bench``: run the benchmark and print a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zhibao_bench.main import BenchConfig, run_bench

ROWS = (
    ("reference_events_per_s", "(1) reference: nats-py publish_async + pull consumer, events/s"),
    ("e2e_events_per_s", "(2) end to end, batched, SQLite, events/s"),
    ("e2e_events_per_s_postgres", "(2) end to end, batched, PostgreSQL, events/s"),
    ("ratio", "(2) batched SQLite / reference"),
    ("single_event_per_s", "(3) single events, events/s"),
    ("single_event_p99_post_ms", "(3) single events, POST p99 ms"),
    ("mixed_achieved_per_s", "(4) mixed load: single events achieved, events/s"),
    ("mixed_backlog_at_end", "(4) mixed load: events not yet in the rollup when load ended"),
    ("p99_rollup_ms", "(4) mixed load: POST -> rollup published, p99 ms"),
    ("p99_alert_ms", "(4) mixed load: POST of a confirmed case -> webhook, p99 ms"),
    ("mixed_read_p99_ms", "(4) mixed load: rollup read p99 ms"),
    ("p99_read_ms_200k", "(5) rollup read p99 ms at 200k events"),
    ("p99_read_ms_1m", "(5) rollup read p99 ms at 1M events"),
    ("rebuild_events_per_s", "(6) rebuild, events/s"),
    ("peak_rss_mb", "(7) peak resident memory, MB"),
    ("lost", "events lost"),
    ("double_counted", "events double counted"),
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
) -> None:
    """Measure the machine's reference limit and the whole pipeline against it."""
    config = (
        BenchConfig.smoke(output)
        if smoke
        else BenchConfig(events=events, batch_size=batch_size, output=output)
    )
    results = run_bench(config)
    typer.echo(table(results))
    typer.echo(f"\nwritten to {config.output}")
    if results["lost"] or results["double_counted"]:
        raise typer.Exit(1)
