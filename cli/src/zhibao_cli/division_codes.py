"""The National Bureau of Statistics' division-code table (统计用区划代码) as a registry.

The table lists every unit with a 12-digit code padded with zeros (640000000000 is the
province 64, 640100000000 the city 6401, 640106001000 the street 640106001), an urban-rural
classification code (城乡分类代码, villages and communities only) and a name (名称).
Each unit's level and short code follow from the padding; its parent is the nearest unit
above it that the table lists (a city without districts, such as 东莞, has its streets
directly under the city).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zhibao_shared.hierarchy import CODE_LENGTHS, LEVEL_OF_LENGTH, Level, Registry, Unit, lineage

CODE_HEADERS = ("统计用区划代码", "区划代码", "代码", "code")
NAME_HEADERS = ("名称", "name")
CLASS_HEADERS = ("城乡分类代码", "城乡分类", "urban_rural")
FULL_LENGTH = 12


@dataclass(frozen=True)
class Columns:
    """Where the code, the name and the urban-rural class are in a row."""

    code: int
    name: int
    urban_rural: int | None


@dataclass
class Imported:
    """What a table gave: the units and the rows that were refused (row number, reason)."""

    units: list[Unit] = field(default_factory=list)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)

    def counts(self) -> dict[Level, int]:
        """How many units of each level, from the top down."""
        counts = dict.fromkeys(Level, 0)
        for unit in self.units:
            counts[unit.level] += 1
        return counts


def short_code(code: str) -> str:
    """The unit's own code: the 12-digit code without the zeros that pad it."""
    for length in CODE_LENGTHS[:-1]:
        if not code[length:].strip("0"):
            return code[:length]
    return code


def _columns(header: Sequence[str]) -> Columns | None:
    """The columns named by a header row (None when the row is not a header)."""
    names = [cell.strip().lower() for cell in header]

    def find(candidates: tuple[str, ...]) -> int | None:
        return next((names.index(c.lower()) for c in candidates if c.lower() in names), None)

    code, name = find(CODE_HEADERS), find(NAME_HEADERS)
    if code is None or name is None:
        return None
    return Columns(code, name, find(CLASS_HEADERS))


def _positional(width: int) -> Columns:
    """A table without a header: code, name; or code, urban-rural class, name (as published)."""
    return Columns(0, 2, 1) if width >= 3 else Columns(0, 1, None)


def _cell(row: Sequence[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _check(code: str, name: str, urban_rural: str) -> str | None:
    """Why the row cannot be a unit (None when it can)."""
    if len(code) != FULL_LENGTH or not code.isdigit():
        return f"code {code!r} is not a 12-digit division code"
    if not short_code(code).strip("0"):
        return f"code {code!r} names no unit"
    if not name:
        return f"code {code}: the name is empty"
    if urban_rural and (len(urban_rural) != 3 or not urban_rural.isdigit()):
        return f"code {code}: urban-rural class {urban_rural!r} is not a 3-digit code"
    return None


def _rows_to_units(rows: Iterable[tuple[int, str, str]], imported: Imported) -> None:
    """Units from (row number, 12-digit code, name) rows, parents resolved once all are read."""
    seen: dict[str, int] = {}
    named: list[tuple[str, str]] = []
    for number, code, name in rows:
        short = short_code(code)
        if short in seen:
            imported.bad_rows.append((number, f"code {code} is listed twice (row {seen[short]})"))
            continue
        seen[short] = number
        named.append((short, name))
    for short, name in named:
        above = [c for c in lineage(short)[:-1] if c in seen]
        level = LEVEL_OF_LENGTH[len(short)]
        imported.units.append(
            Unit(code=short, name=name, level=level, parent=above[-1] if above else None)
        )


def parse_rows(rows: Iterable[Sequence[str]]) -> Imported:
    """Units and refused rows from a table's rows (the first may be a header)."""
    imported = Imported()
    good: list[tuple[int, str, str]] = []
    columns: Columns | None = None
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _columns(row)
            if columns is not None:
                continue  # the header row
            columns = _positional(len(row))
        code, name = _cell(row, columns.code), _cell(row, columns.name)
        problem = _check(code, name, _cell(row, columns.urban_rural))
        if problem:
            imported.bad_rows.append((number, problem))
        else:
            good.append((number, code, name))
    _rows_to_units(good, imported)
    imported.bad_rows.sort()
    return imported


def _text(value: object) -> str:
    """A spreadsheet cell as text (codes typed as numbers keep all their digits)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_xlsx(path: Path) -> Iterator[list[str]]:
    """The first sheet's rows as text."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            yield [_text(value) for value in row]
    finally:
        workbook.close()


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file in UTF-8 (with or without a byte-order mark) or GB18030."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    return list(csv.reader(io.StringIO(text, newline="")))


def read_table(path: Path) -> Imported:
    """Parse a CSV or XLSX division-code table."""
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return parse_rows(read_xlsx(path))
    return parse_rows(read_csv(path))


def registry_of(imported: Imported) -> Registry:
    """The registry of the imported units (raises RegistryError when inconsistent)."""
    return Registry(imported.units)
