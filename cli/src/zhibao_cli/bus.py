"""``zhibao bus-url`` and ``zhibao bus-setup``: the operator's access to the bus."""

from __future__ import annotations

import asyncio
from typing import Annotated

import nats
import typer

from zhibao_shared.broker import provision_streams
from zhibao_shared.bus_access import OPERATOR, deploy_accounts_conf
from zhibao_shared.bus_credentials import BusCredentials
from zhibao_shared.settings import ZhibaoSettings, nats_servers, redacted


def bus_url() -> None:
    """Print the NATS URL of `zhibao up`'s bus with the operator's credentials.

    For operators' tools (the `nats` CLI, scripts, tests): the embedded bus has no
    anonymous access. Keep the output as secret as the data directory.
    """
    settings = ZhibaoSettings()
    try:
        credentials = BusCredentials.existing(settings.data_dir)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(credentials.url(OPERATOR, settings.nats_url))


def bus_setup() -> None:
    """Declare the streams with their configured limits (an operator's step).

    Run with the operator's credentials in ZHIBAO_NATS_URL; `zhibao up` runs it
    before starting the services. Services only create a missing stream and never
    change one.
    """
    settings = ZhibaoSettings()
    asyncio.run(_provision(settings))
    typer.echo(f"streams declared on {redacted(settings.nats_url)}")


async def _provision(settings: ZhibaoSettings) -> None:
    client = await nats.connect(nats_servers(settings.nats_url), connect_timeout=5)
    try:
        await provision_streams(client.jetstream(), settings)
    finally:
        await client.close()


def bus_accounts(
    aggregator_durable: Annotated[
        list[str] | None, typer.Option(help="Durable consumer of an aggregator (repeatable)")
    ] = None,
    alerts_durable: Annotated[
        list[str] | None, typer.Option(help="Durable consumer of an alerts instance (repeatable)")
    ] = None,
) -> None:
    """Print deploy/nats/accounts.conf: every bus user and its subject permissions."""
    typer.echo(
        deploy_accounts_conf(aggregator_durable or ["aggregator"], alerts_durable or ["alerts"]),
        nl=False,
    )
