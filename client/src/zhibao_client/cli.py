"""``zhibao send``: submit events from a JSON or JSON-lines file (or stdin)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zhibao_client.client import ZhibaoClient
from zhibao_client.importer import ImportRefused, build_events


def _read(source: Path | None) -> list[dict[str, Any]]:
    text = source.read_text("utf-8") if source else sys.stdin.read()
    stripped = text.strip()
    if stripped.startswith("["):
        return list(json.loads(stripped))
    if stripped.startswith("{") and "\n" not in stripped:
        return [json.loads(stripped)]
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def send(
    source: Annotated[
        Path | None, typer.Argument(help="JSON array / JSON lines; stdin if absent")
    ] = None,
    url: Annotated[str, typer.Option(envvar="ZHIBAO_INTAKE_URL")] = "http://127.0.0.1:8101",
    token: Annotated[str, typer.Option(envvar="ZHIBAO_TOKEN", help="A report token")] = "",
    spool: Annotated[Path, typer.Option(help="Where unsent events wait")] = Path("zhibao-spool.db"),
    wait: Annotated[float, typer.Option(help="Seconds to keep retrying while intake is away")] = 60,
) -> None:
    """Send events; those intake cannot take now stay in the spool for the next run."""
    if not token:
        raise typer.BadParameter("a token is required (--token or ZHIBAO_TOKEN)")
    client = ZhibaoClient(url, token, spool)
    try:
        client.add(_read(source))
        report = client.drain_until_empty(max_wait_s=wait)
    finally:
        client.close()
    typer.echo(
        f"accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {len(report.rejected)}, still spooled {report.spooled}"
    )
    for event, errors in report.rejected:
        reasons = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors)
        typer.echo(f"  rejected {event.get('id')}: {reasons}", err=True)
    if report.rejected or report.spooled:
        raise typer.Exit(1)


def import_sheet(
    sheet: Annotated[Path, typer.Argument(help="A screening sheet: .xlsx or .csv")],
    community: Annotated[str, typer.Option(help="The 12-digit community code")],
    url: Annotated[str, typer.Option(envvar="ZHIBAO_INTAKE_URL")] = "http://127.0.0.1:8101",
    token: Annotated[str, typer.Option(envvar="ZHIBAO_TOKEN", help="A report token")] = "",
    spool: Annotated[Path, typer.Option(help="Where unsent events wait")] = Path("zhibao-spool.db"),
    dry_run: Annotated[bool, typer.Option(help="Validate only")] = False,
) -> None:
    """Turn a door-to-door screening sheet into events; any bad row means nothing is sent."""
    try:
        events = build_events(sheet, community)
    except ImportRefused as refused:
        for error in refused.errors:
            typer.echo(f"row {error.row}, column {error.column}: {error.message}", err=True)
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(events)} rows valid")
    if dry_run:
        return
    if not token:
        raise typer.BadParameter("a token is required (--token or ZHIBAO_TOKEN)")
    client = ZhibaoClient(url, token, spool)
    try:
        report = client.submit(events)
    finally:
        client.close()
    typer.echo(
        f"accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {len(report.rejected)}, still spooled {report.spooled}"
    )
    if report.rejected or report.spooled:
        raise typer.Exit(1)
