"""``zhibao aggregator``: run the service, migrate its database, or rebuild it from the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.observability import configure_logging
from zhibao_shared.runtime import tune_gc

# The service's modules are imported inside the commands, so that other ``zhibao``
# commands (and the service processes of ``zhibao up``) start without loading them.

app = typer.Typer(help="The aggregator service (HTTP :8102): rollups from the event stream.")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run the aggregator against ZHIBAO_NATS_URL until SIGTERM/Ctrl-C (then drain and stop)."""
    if ctx.invoked_subcommand is not None:
        return
    from zhibao_aggregator.bootstrap import create_app
    from zhibao_aggregator.template_files import TemplateFileError
    from zhibao_shared.serving import serve

    settings = AggregatorSettings()
    try:
        app = create_app(settings)
    except TemplateFileError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    serve(app, settings, settings.aggregator_port)


@app.command()
def migrate() -> None:
    """Create or upgrade the aggregator's database schema (Alembic upgrade heads)."""
    from zhibao_aggregator.migrate import migrate as run_migrations

    settings = AggregatorSettings()
    configure_logging(settings, service="aggregator")
    asyncio.run(run_migrations(settings.database_url()))
    typer.echo("aggregator database is at the latest schema")


@app.command("check-templates")
def check_templates(
    directory: Annotated[
        Path | None,
        typer.Argument(help="A template directory; ZHIBAO_AGGREGATOR_TEMPLATES_DIR by default"),
    ] = None,
) -> None:
    """Validate report template files (every problem named by file and field)."""
    from zhibao_aggregator.bootstrap import template_files
    from zhibao_aggregator.template_files import TemplateFileError
    from zhibao_shared.hierarchy import load_registry

    settings = AggregatorSettings()
    if directory is not None:
        settings = settings.model_copy(update={"aggregator_templates_dir": directory})
    try:
        found = template_files(settings, load_registry(settings.registry_path))
    except TemplateFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for template_id, template in sorted(found.items()):
        typer.echo(f"{template_id}: {template.title} ({len(template.columns)} columns)")
    typer.echo(f"{len(found)} template(s) valid")


@app.command("rebuild")
def rebuild_command(
    force: bool = typer.Option(False, "--force", help="Wipe a database that holds data"),
) -> None:
    """Replay the event stream from its start into an empty database (service stopped)."""
    from zhibao_aggregator.bootstrap import NeedsOperator, NotEmpty, rebuild

    settings = AggregatorSettings()
    configure_logging(settings, service="aggregator")
    tune_gc()
    try:
        replayed = asyncio.run(rebuild(settings, force=force))
    except (NotEmpty, NeedsOperator) as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"rebuilt from the stream: {replayed} messages replayed")
