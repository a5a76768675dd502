"""``zhibao intake``: run the intake service in the foreground."""

from __future__ import annotations

import typer

from zhibao_intake.settings import IntakeSettings

app = typer.Typer(help="The intake service (HTTP :8101 and NATS request-reply).")


@app.callback(invoke_without_command=True)
def run(ctx: typer.Context) -> None:
    """Run intake against ZHIBAO_NATS_URL until SIGTERM/Ctrl-C (then drain and stop)."""
    if ctx.invoked_subcommand is not None:
        return
    # imported here so that other ``zhibao`` commands start without loading the service
    from zhibao_intake.bootstrap import create_app
    from zhibao_shared.serving import serve

    settings = IntakeSettings()
    serve(create_app(settings), settings, settings.intake_port)
