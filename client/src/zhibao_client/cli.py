"""Commands of the community client, mounted into ``zhibao``: ``send``, ``import``, ``simulate``.

Each is a plain function for ``app.command(name)(function)``; :data:`app`
holds all three for a standalone use.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from zhibao_client.client import RequestRefused, SubmitReport, ZhibaoClient
from zhibao_client.eventfile import EventFileError, parse_events
from zhibao_client.importer import ImportRefused, build_events
from zhibao_client.sheet_kinds import KIND_NAMES
from zhibao_client.simulator import (
    CommandCentre,
    Progress,
    Simulation,
    SimulationConfig,
    deliver,
    run,
)
from zhibao_client.simulator.config import DEFAULT_AREA, DEFAULT_SCALE

Url = Annotated[str, typer.Option(envvar="ZHIBAO_INTAKE_URL", help="Intake's address")]
Token = Annotated[str, typer.Option(envvar="ZHIBAO_TOKEN", help="A report token")]
SpoolPath = Annotated[Path, typer.Option(help="The spool file where unsent events wait")]
Wait = Annotated[float, typer.Option(help="Seconds to keep retrying while intake is away")]
DEFAULT_URL = "http://127.0.0.1:8101"
DEFAULT_RESPONSE_URL = "http://127.0.0.1:8104"


def _need_token(token: str) -> None:
    if not token:
        raise typer.BadParameter("a token is required (--token or ZHIBAO_TOKEN)")


def _deliver(client: ZhibaoClient, wait: float, events: list[Any]) -> SubmitReport:
    try:
        report = client.submit(events)
        if report.spooled:
            report.add(client.drain_until_empty(max_wait_s=wait))
    except RequestRefused as refused:
        typer.echo(f"{refused}; the events stay in the spool", err=True)
        raise typer.Exit(2) from None
    finally:
        client.close()
    return report


def _finish(report: SubmitReport) -> None:
    typer.echo(report.summary())
    for rejection in report.rejected:
        typer.echo(f"  rejected {rejection.describe()}", err=True)
    if report.held_back:
        typer.echo(f"  intake holds them back: {report.held_back}", err=True)
    elif report.spooled:
        typer.echo("  intake is unreachable for now; run the command again to resend", err=True)
    if report.rejected or report.spooled:
        raise typer.Exit(1)


def send(
    source: Annotated[
        Path | None, typer.Argument(help="JSON array, JSON object or JSON lines; stdin if absent")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    spool: SpoolPath = Path("zhibao-spool.db"),
    wait: Wait = 60,
) -> None:
    """Send events (and whatever is still spooled from earlier runs) to intake."""
    _need_token(token)
    try:
        events = parse_events(source.read_text("utf-8") if source else sys.stdin.read())
    except EventFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    _finish(_deliver(ZhibaoClient(url, token, spool), wait, events))


def import_sheet(
    sheet: Annotated[
        Path,
        typer.Argument(
            help="A screening sheet, isolation roster, case list or daily closes: .xlsx or .csv"
        ),
    ],
    community: Annotated[str, typer.Option(help="The 12-digit community code")],
    kind: Annotated[
        str | None,
        typer.Option(
            help=f"The sheet's kind ({', '.join(KIND_NAMES)}); recognised from its headers "
            "when absent"
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    spool: SpoolPath = Path("zhibao-spool.db"),
    dry_run: Annotated[bool, typer.Option(help="Validate only, send nothing")] = False,
    wait: Wait = 60,
) -> None:
    """Turn a community's sheet into events; any bad row means nothing is sent."""
    if kind is not None and kind not in KIND_NAMES:
        raise typer.BadParameter(f"one of {', '.join(KIND_NAMES)}", param_hint="--kind")
    try:
        result = build_events(sheet, community, kind=kind)
    except ImportRefused as refused:
        for error in refused.errors:
            typer.echo(str(error), err=True)
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    if result.ignored_columns:
        typer.echo(f"columns not read: {', '.join(result.ignored_columns)}", err=True)
    typer.echo(f"{result.rows} rows valid ({result.kind}: {len(result.events)} events)")
    if dry_run:
        return
    _need_token(token)
    _finish(_deliver(ZhibaoClient(url, token, spool), wait, list(result.events)))


def simulate(
    url: Url = DEFAULT_URL,
    token: Token = "",
    seed: Annotated[int, typer.Option(help="Same seed, same events")] = 1,
    days: Annotated[int, typer.Option(min=1, help="Simulated days, ending today")] = 14,
    start: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First day (default: today-days+1)"),
    ] = None,
    scale: Annotated[
        float, typer.Option(help="Fraction of the real volume (1.0 ≈ 1.6M screenings/day)")
    ] = DEFAULT_SCALE,
    area: Annotated[
        str,
        typer.Option(help="Simulate the communities under this unit (default: the whole city)"),
    ] = DEFAULT_AREA,
    outbreak: Annotated[
        bool, typer.Option(help="Inject a building outbreak, and a second one days later")
    ] = False,
    outbreak_day: Annotated[
        int | None,
        typer.Option(min=0, help="Day index of the first outbreak (default: days-8)"),
    ] = None,
    response_url: Annotated[
        str, typer.Option(envvar="ZHIBAO_RESPONSE_URL", help="The response service's address")
    ] = DEFAULT_RESPONSE_URL,
    operate_token: Annotated[
        str,
        typer.Option(
            envvar="ZHIBAO_OPERATE_TOKEN",
            help="A command centre's operate token (city scope): with --outbreak, "
            "runs the response loop (levels, companion tasks, their results)",
        ),
    ] = "",
    speed: Annotated[
        float,
        typer.Option(
            "--seconds-per-day",
            "--speed",
            help="Wall-clock seconds per simulated day (0: as fast as possible)",
        ),
    ] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Share of events resent once")] = 0.0,
    reorder: Annotated[int, typer.Option(min=1, help="Out-of-order window (events)")] = 1,
    spool: SpoolPath = Path("zhibao-simulate.spool"),
    output: Annotated[
        Path | None, typer.Option(help="Write the events as JSON lines here instead of posting")
    ] = None,
) -> None:
    """Simulate the sample city's reporting (screenings, cases, isolation, daily reports)
    and, given a command centre's token, its response (levels, tasks, results)."""
    first: date | None = start.date() if start else None
    config = SimulationConfig(
        seed=seed,
        days=days,
        start=first,
        scale=scale,
        area=area,
        outbreak=outbreak,
        outbreak_day=outbreak_day,
        loop=outbreak and bool(operate_token) and output is None,
        until=datetime.now().astimezone(),
    )
    simulation = Simulation(config)
    items = deliver(
        simulation.timeline(), seed=seed, duplicate_rate=duplicates, reorder_window=reorder
    )
    if output is not None:
        with output.open("w", encoding="utf-8") as sink:
            for event in items:
                sink.write(json.dumps(event, ensure_ascii=False) + "\n")
    else:
        _need_token(token)
        centre = CommandCentre(response_url, operate_token, simulation.truth)
        try:
            with ZhibaoClient(url, token, spool, batch_size=200) as client:
                progress = run(
                    items, client, seconds_per_day=speed, on_progress=ProgressLine(), centre=centre
                )
        except RequestRefused as refused:
            typer.echo(f"\n{refused}; unsent events stay in {spool}", err=True)
            raise typer.Exit(2) from None
        except httpx.HTTPError as exc:
            typer.echo(f"\nthe response service at {response_url}: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            centre.close()
        typer.echo("", err=True)
        _summary(simulation, progress)
        if progress.rejected or progress.spooled:
            raise typer.Exit(1)
        return
    _summary(simulation, None)


class ProgressLine:
    """Rewrites one line on a terminal; a line per simulated day otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._day = ""

    def __call__(self, progress: Progress) -> None:
        if self._tty:
            typer.echo(f"\r{progress.line()}", err=True, nl=False)
        elif progress.day != self._day:
            self._day = progress.day
            typer.echo(progress.line(), err=True)


def _summary(simulation: Simulation, progress: Progress | None) -> None:
    truth = simulation.truth
    typer.echo(
        f"simulated {simulation.config.days} days, {len(simulation.communities)} communities: "
        f"{truth.events:,} events, {truth.total('screenings'):,} screenings, "
        f"{truth.total('fevers'):,} fevers, {truth.new_cases('suspected')} suspected, "
        f"{truth.new_cases('confirmed')} confirmed"
    )
    if progress is not None:
        typer.echo(
            f"intake: sent {progress.sent:,}, accepted {progress.accepted:,}, "
            f"duplicates {progress.duplicates:,}, "
            f"rejected {len(progress.rejected):,}, still spooled {progress.spooled:,}"
        )
        for rejection in progress.rejected[:10]:
            typer.echo(f"  rejected {rejection.describe()}", err=True)
    registered = truth.key_persons()
    needs = truth.need_figures(datetime.now().astimezone())
    typer.echo(
        f"key persons: {sum(registered.values()):,} on the registers "
        f"({', '.join(f'{k} {n:,}' for k, n in registered.items())}); "
        f"needs: raised {needs.raised:,}, met {needs.done:,} ({needs.done_late:,} late), "
        f"open {needs.open:,} ({needs.overdue:,} overdue)"
    )
    for unit in dict.fromkeys(u for _at, u, _level in truth.levels):
        levels = ", ".join(
            f"{level} ({at:%Y-%m-%d %H:%M})" for at, u, level in truth.levels if u == unit
        )
        typer.echo(f"levels declared: {levels} for {unit}")
    if truth.levels:
        f = truth.task_figures(datetime.now().astimezone())
        typer.echo(
            f"tasks: issued {f.issued:,}, done {f.done:,} ({f.done_late:,} late), "
            f"unreachable {f.unreachable:,}, transferred {f.transferred:,}, "
            f"cancelled by lifting {f.cancelled:,}, open {f.open:,} ({f.overdue:,} overdue)"
        )


app = typer.Typer(help="Zhibao community client.", no_args_is_help=True)
app.command("send")(send)
app.command("import")(import_sheet)
app.command("simulate")(simulate)
