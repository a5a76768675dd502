"""``zhibao registry``: load a real deployment's own hierarchy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from zhibao_cli.division_codes import Imported, read_table, registry_of
from zhibao_shared.hierarchy import Registry, RegistryError

app = typer.Typer(help="The hierarchy registry (province, city, district, street, community).")

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
