"""``zhibao alerts``: run the alerts service or migrate its database."""

from __future__ import annotations

import asyncio

import typer

from zhibao_alerts.settings import AlertsSettings

app = typer.Typer(help="The alerts service (HTTP :8103): warnings, escalation, notifications.")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run the alerts service against ZHIBAO_NATS_URL until SIGTERM/Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    # imported here so that other ``zhibao`` commands start without loading the service
    from zhibao_alerts.bootstrap import create_app
    from zhibao_shared.serving import serve

    settings = AlertsSettings()
    serve(create_app(settings), settings, settings.alerts_port)


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the alerts database schema (Alembic upgrade heads)."""
    from zhibao_shared.db import run_migrations

    asyncio.run(run_migrations(AlertsSettings().database_url(), "zhibao_alerts"))
    typer.echo("alerts database is at the latest schema")
