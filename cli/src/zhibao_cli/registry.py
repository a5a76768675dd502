"""``zhibao registry``: load a real deployment's own hierarchy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from zhibao_cli.division_codes import Imported, read_csv, read_table, read_xlsx, registry_of
from zhibao_cli.place_table import read_places
from zhibao_shared.hierarchy import Registry, RegistryError, load_registry
from zhibao_shared.places import Places, PlacesError
from zhibao_shared.settings import ZhibaoSettings

app = typer.Typer(
    help="The hierarchy registry (province, city, district, street, community) and the "
    "places below the community (compounds, grids, buildings)."
)

HEADER = "Imported by `zhibao registry import` from {source} (统计用区划代码 table)."


def _report_bad_rows(imported: Imported) -> None:
    for number, reason in imported.bad_rows:
        typer.echo(f"row {number}: {reason}", err=True)


def _summary(imported: Imported) -> str:
    return ", ".join(f"{n} {level.value}" for level, n in imported.counts().items() if n)


@app.command("import")
def import_table(
    table: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="统计用区划代码 table: CSV or XLSX")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            envvar="ZHIBAO_REGISTRY_PATH",
            help="Registry file to write (the services read ZHIBAO_REGISTRY_PATH)",
        ),
    ],
    skip_bad_rows: Annotated[
        bool, typer.Option(help="Write the registry without the refused rows")
    ] = False,
) -> None:
    """Convert the National Bureau of Statistics' division-code table into a registry."""
    imported = read_table(table)
    _report_bad_rows(imported)
    if imported.bad_rows and not skip_bad_rows:
        typer.echo(
            f"{len(imported.bad_rows)} bad row(s): nothing written "
            "(fix them, or pass --skip-bad-rows)",
            err=True,
        )
        raise typer.Exit(1)
    try:
        registry = registry_of(imported)
    except RegistryError as error:
        typer.echo(f"the table is inconsistent: {error}", err=True)
        raise typer.Exit(1) from error
    output.write_text(registry.to_yaml(HEADER.format(source=table.name)), "utf-8")
    started = time.perf_counter()
    Registry.from_yaml(output.read_text("utf-8"))
    took = time.perf_counter() - started
    typer.echo(f"{output}: {_summary(imported)} (loads in {took:.2f} s)")
    typer.echo(f"use it with: export ZHIBAO_REGISTRY_PATH={output.resolve()}")


PLACES_HEADER = "Imported by `zhibao registry import-places` from {source}."


@app.command("import-places")
def import_places(
    table: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Places table: CSV or XLSX with a header"),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            envvar="ZHIBAO_PLACES_PATH",
            help="Places file to write (the services read ZHIBAO_PLACES_PATH); the places it "
            "already lists keep their ids",
        ),
    ],
) -> None:
    """Convert a table of compounds, grids and buildings into a places file.

    Columns (header row, Chinese or English): 编号/id, 社区/community, 类型/kind
    (小区, 网格, 楼栋), 名称/name, 别名/aliases, 所属小区/compound, 所属网格/grid,
    网格员/worker, 户数/households, 人口/population. See the README, "Places below the
    community".
    """
    registry = load_registry(ZhibaoSettings().registry_path)
    previous = _previous_places(output)
    rows = read_xlsx(table) if table.suffix.lower() in {".xlsx", ".xlsm"} else read_csv(table)
    imported = read_places(rows, registry, previous)
    for number, reason in imported.bad_rows:
        typer.echo(f"row {number}: {reason}" if number else reason, err=True)
    if imported.places is None:
        typer.echo(f"{len(imported.bad_rows)} bad row(s): nothing written", err=True)
        raise typer.Exit(1)
    output.write_text(imported.places.to_lines(PLACES_HEADER.format(source=table.name)), "utf-8")
    counts = ", ".join(f"{n} {kind.value}" for kind, n in imported.counts().items())
    typer.echo(f"{output}: {counts}")
    typer.echo(f"use it with: export ZHIBAO_PLACES_PATH={output.resolve()}")


def _previous_places(output: Path) -> Places | None:
    """The places the output file lists now (their ids are kept), if it exists."""
    if not output.exists():
        return None
    try:
        return Places.from_lines(output.read_text("utf-8"), str(output))
    except PlacesError as error:
        typer.echo(f"{output} is not a places file ({error}); not overwritten", err=True)
        raise typer.Exit(1) from error
