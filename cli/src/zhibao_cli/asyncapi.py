"""``zhibao asyncapi``: print the bus's AsyncAPI document."""

from __future__ import annotations

import json

import typer

from zhibao_intake.asyncapi_route import bus_document


def asyncapi() -> None:
    """Print the AsyncAPI 3.0.0 document of the bus (subjects, payloads, permissions).

    The same document intake serves at GET /asyncapi.json.
    """
    typer.echo(json.dumps(bus_document(), ensure_ascii=False, indent=2))
