"""``zhibao intake``: run the intake service in the foreground."""

from __future__ import annotations

import typer
import uvicorn

from zhibao_intake.bootstrap import create_app
from zhibao_intake.settings import IntakeSettings

app = typer.Typer(help="The intake service (HTTP :8101 and NATS request-reply).")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run intake against ZHIBAO_NATS_URL until SIGTERM/Ctrl-C (then drain and stop)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = IntakeSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.intake_port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
