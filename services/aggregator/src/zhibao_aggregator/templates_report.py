"""A report template filled for one unit from the rollups, as XLSX or CSV.

Layout (both formats): the title row, the header row with the template's headings, one
row per unit of the template's row level under the unit (registry order), and the
totals row (the unit's own figures) when the template asks for it.

Every text (title, headings, unit names, the totals label) is written as text, never as a
formula: an XLSX string cell, and in CSV a text beginning with = + - @ or a tab or
carriage return gets a leading ' (OWASP's advice against CSV injection). Figures stay
numbers.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta

from zhibao_aggregator.domain.templates import (
    CONTROL_CHARACTERS,
    FORMULA_STARTS,
    FigureRow,
    ReportTemplate,
    Value,
    combine,
    title_of,
)
from zhibao_aggregator.reader import RollupReader, scalars

Cells = list[Value]


@dataclass(frozen=True)
class FilledTable:
    """A filled template: its title, headings, unit rows and totals row (if any)."""

    title: str
    headings: list[str]
    rows: list[Cells]
    totals: Cells | None
    first: date
    last: date


async def range_figures(
    reader: RollupReader, codes: list[str], first: date, last: date
) -> dict[str, FigureRow]:
    """Each unit's figures over the days ``first`` to ``last``: each day's rollup, flows
    added up, levels as on the last day (see :func:`domain.templates.combine`)."""
    days: list[dict[str, FigureRow]] = []
    day = first
    while day <= last:
        found = await reader.figures_of(codes, day)
        days.append({code: scalars(figures) for code, figures in found.items()})
        day += timedelta(days=1)
    return {code: combine([found[code] for found in days]) for code in codes}


async def fill(
    reader: RollupReader, template: ReportTemplate, code: str, first: date, last: date
) -> FilledTable:
    """The template filled for unit ``code`` (which must be able to fill it)."""
    unit = reader.unit(code)
    units = [u for u in reader.registry.at_level(template.rows) if u.code.startswith(code)]
    found = await range_figures(reader, [*(u.code for u in units), code], first, last)
    rows = [_cells(template, u.code, u.name, found[u.code]) for u in units]
    totals = _cells(template, code, template.totals_label, found[code]) if template.totals else None
    return FilledTable(
        title_of(template, unit.name, code, first, last),
        _headings(template),
        rows,
        totals,
        first,
        last,
    )


def _headings(template: ReportTemplate) -> list[str]:
    codes = [template.code_heading] if template.code_heading else []
    return [*codes, template.name_heading, *(c.heading for c in template.columns)]


def _cells(template: ReportTemplate, code: str, name: str, figures: FigureRow) -> Cells:
    codes: Cells = [code] if template.code_heading else []
    return [*codes, name, *(figures.get(c.figure) for c in template.columns)]


def lines(table: FilledTable) -> list[Cells]:
    """The table's rows from the title down, texts without control characters (a
    template stored before they were refused may hold some: a workbook cannot)."""
    out: list[Cells] = [[table.title], list(table.headings), *table.rows]
    if table.totals is not None:
        out.append(table.totals)
    return [[_printable(cell) for cell in line] for line in out]


_CONTROL = re.compile(CONTROL_CHARACTERS)


def _printable(value: Value) -> Value:
    return _CONTROL.sub("", value) if isinstance(value, str) else value


def as_text(value: Value) -> Value:
    """A CSV cell: a text a spreadsheet program would read as a formula behind a ``'``;
    anything else (figures among them) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def as_csv(table: FilledTable) -> str:
    """The table as CSV (UTF-8 with BOM so spreadsheet programs show Chinese)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerows([as_text(cell) for cell in line] for line in lines(table))
    return buffer.getvalue()


_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def as_xlsx(table: FilledTable) -> bytes:
    """The table as an Excel workbook: the title merged over the columns, bold headings and
    totals, the header frozen."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    rows = lines(table)
    sheet.title = _SHEET_NAME_FORBIDDEN.sub("_", str(rows[0][0]))[:31] or "report"
    width = len(table.headings)
    for line in rows:
        sheet.append(line)
    for row in sheet.iter_rows():
        for cell in row:
            if not isinstance(cell.value, str):
                continue
            # openpyxl makes a text beginning with = a formula (and #N/A an error cell)
            cell.data_type = "s"
            if cell.value.startswith(FORMULA_STARTS):
                # Excel's own mark of a typed '=...: still text when the cell is edited
                cell.quotePrefix = True
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet.cell(1, 1).font = Font(bold=True, size=14)
    sheet.cell(1, 1).alignment = Alignment(horizontal="center")
    bold_rows = [2, sheet.max_row] if table.totals is not None else [2]
    for row in bold_rows:
        for column in range(1, width + 1):
            sheet.cell(row, column).font = Font(bold=True)
    for column in range(1, width + 1):
        sheet.cell(2, column).alignment = Alignment(wrap_text=True, vertical="center")
        cells = [rows[1][column - 1], *(line[column - 1] for line in rows[2:])]
        widest = max(_display_width(cell) for cell in cells)
        sheet.column_dimensions[get_column_letter(column)].width = min(max(8, widest + 2), 30)
    sheet.freeze_panes = "A3"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _display_width(value: Value) -> int:
    """Columns a cell needs: a Chinese character takes two."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)
