"""``zhibao response``: run the response service or migrate its database."""

from __future__ import annotations

import asyncio

import typer

from zhibao_response.settings import ResponseSettings

app = typer.Typer(help="The response service (HTTP :8104): tasks down, graded response levels.")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run the response service against ZHIBAO_NATS_URL until SIGTERM/Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    # imported here so that other ``zhibao`` commands start without loading the service
    from zhibao_response.bootstrap import create_app
    from zhibao_shared.serving import serve

    settings = ResponseSettings()
    serve(create_app(settings), settings, settings.response_port)


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the response database schema (Alembic upgrade heads)."""
    from zhibao_shared.db import run_migrations

    asyncio.run(run_migrations(ResponseSettings().database_url(), "zhibao_response"))
    typer.echo("response database is at the latest schema")
