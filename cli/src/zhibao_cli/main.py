"""The ``zhibao`` command: run the system, one service, or manage tokens."""

from __future__ import annotations

import typer

from zhibao_aggregator.cli import app as aggregator_app
from zhibao_alerts.cli import app as alerts_app
from zhibao_bench.cli import bench
from zhibao_cli import audit, bus, registry, tasks, tokens, up
from zhibao_cli.asyncapi import asyncapi
from zhibao_client.cli import import_sheet, send, simulate
from zhibao_intake.cli import app as intake_app
from zhibao_response.cli import app as response_app

app = typer.Typer(
    help="Zhibao (直报): district-wide information direct reporting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up")(up.up)
app.command("bus-url")(bus.bus_url)
app.command("bus-setup")(bus.bus_setup)
app.command("bus-accounts")(bus.bus_accounts)
app.command("asyncapi")(asyncapi)
app.command("bench")(bench)
app.command("send")(send)
app.command("import")(import_sheet)
app.command("simulate")(simulate)
app.command("audit")(audit.audit)
app.add_typer(tokens.app, name="token")
app.add_typer(tasks.app, name="tasks")
app.add_typer(registry.app, name="registry")
app.add_typer(intake_app, name="intake")
app.add_typer(aggregator_app, name="aggregator")
app.add_typer(alerts_app, name="alerts")
app.add_typer(response_app, name="response")
