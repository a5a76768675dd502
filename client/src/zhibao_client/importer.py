"""Importing a community's door-to-door screening sheet (Excel or CSV, Chinese headers).

Every row is validated with the shared event contract first; if any row is
wrong, each problem is reported by row number and (Chinese) column and nothing
is sent. Names (姓名) and other personal columns are never read, and resident
ID numbers never appear in messages.

Event ids are derived from the row's content (never from the ID number: an
event id travels in the clear) plus its occurrence among identical rows, so
importing the same sheet again — also after re-saving it, inserting rows or
correcting another row — sends duplicates only for the rows already sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from zhibao_client.sheet import (
    CANONICAL,
    COLUMNS,
    cell_text,
    normalise_header,
    parse_symptoms,
    parse_temperature,
    parse_time,
    parse_yes_no,
)
from zhibao_shared.events import REPORTED_EVENT

REQUIRED = ("temperature_c",)
_HEADER_SEARCH_ROWS = 10  # title rows above the header are common


@dataclass(frozen=True)
class RowError:
    """One problem: the sheet's row number (as Excel shows it), the column and what is wrong."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class ImportRefused(ValueError):
    """The sheet has errors; nothing was sent."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the sheet; nothing was sent")
        self.errors = errors


@dataclass
class SheetImport:
    """The validated events of a sheet and the columns that were not read."""

    events: list[dict[str, Any]]
    ignored_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Layout:
    header_row: int  # 1-based
    fields: dict[int, str]  # column index → field
    names: dict[str, str]  # field → the sheet's own header text
    ignored: list[str]


def build_events(path: Path, community: str, timezone: str = "Asia/Shanghai") -> SheetImport:
    """Validated ``zhibao.screening.v1`` events, or :class:`ImportRefused` with every problem."""
    rows = [list(r) for r in _read(path)]
    layout = _layout(rows)
    zone = ZoneInfo(timezone)
    errors: list[RowError] = []
    events: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[layout.header_row :], start=layout.header_row + 1):
        if not any(cell_text(row[i]) for i in layout.fields if i < len(row)):
            continue
        event, row_errors = _row_event(row, layout, number, community, zone)
        errors += row_errors
        if event is not None:
            occurrence = seen.get(event["id"], 0)
            seen[event["id"]] = occurrence + 1
            event["id"] = f"{event['id']}-{occurrence}"
            events.append(event)
    if errors:
        raise ImportRefused(errors)
    return SheetImport(events, layout.ignored)


def _read(path: Path) -> list[list[Any]]:
    from zhibao_client.sheet import read_rows

    rows = read_rows(path)
    if not rows:
        raise ImportRefused([RowError(1, "(sheet)", "the sheet is empty")])
    return rows


def _layout(rows: list[list[Any]]) -> _Layout:
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        headers = [cell_text(h) for h in row]
        fields = {
            i: COLUMNS[normalise_header(h)]
            for i, h in enumerate(headers)
            if normalise_header(h) in COLUMNS
        }
        if not set(REQUIRED) <= set(fields.values()):
            continue
        names = {f: headers[i] for i, f in reversed(list(fields.items()))}
        ignored = [h for i, h in enumerate(headers) if h and i not in fields]
        if "time" not in names and "date" not in names:
            raise ImportRefused([RowError(index + 1, "检测时间", "column missing")])
        return _Layout(index + 1, fields, names, ignored)
    raise ImportRefused(
        [RowError(1, CANONICAL[f], "column missing (no header row found)") for f in REQUIRED]
    )


def _row_event(
    row: list[Any], layout: _Layout, number: int, community: str, zone: ZoneInfo
) -> tuple[dict[str, Any] | None, list[RowError]]:
    values = {f: row[i] for i, f in layout.fields.items() if i < len(row) and cell_text(row[i])}
    column = {f: layout.names.get(f, CANONICAL[f]) for f in CANONICAL}
    errors: list[RowError] = []
    data: dict[str, Any] = {"site": "door_to_door"}
    when = None
    try:
        when = parse_time(values.get("time"), values.get("date"), zone).isoformat()
    except (TypeError, ValueError):
        name = column["time"] if "time" in layout.names else column["date"]
        errors.append(RowError(number, name, "not a date and time, e.g. 2026-11-25 08:30"))
    parsers: dict[str, tuple[Callable[[Any], Any], str | None]] = {
        "temperature_c": (parse_temperature, "not a temperature in °C, e.g. 36.8"),
        "symptoms": (parse_symptoms, None),
        "travel_from_risk_area": (parse_yes_no, None),
    }
    for name, (parse, fixed) in parsers.items():
        if name not in values:
            continue
        try:
            data[name] = parse(values[name])
        except ValueError as exc:
            errors.append(RowError(number, column[name], fixed or str(exc)))
    if "temperature_c" not in values:
        errors.append(RowError(number, column["temperature_c"], "missing"))
    for name in ("compound", "building", "grid"):
        if name in values:
            data[name] = cell_text(values[name])
    if "id_number" in values:
        data["person"] = {"id_number": cell_text(values["id_number"])}
    placeholder = datetime.now(zone).isoformat()  # lets the contract check the other cells
    event, contract_errors = _validated(number, community, when or placeholder, data, column)
    reported = {e.column for e in errors}
    errors += [e for e in contract_errors if e.column not in reported]
    return (None, errors) if errors else (event, [])


def _validated(
    number: int, community: str, when: str, data: dict[str, Any], column: dict[str, str]
) -> tuple[dict[str, Any] | None, list[RowError]]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": _content_id(community, when, data),
        "source": f"/{community}/import",
        "type": "zhibao.screening.v1",
        "subject": community,
        "time": when,
        "data": data,
    }
    try:
        model = REPORTED_EVENT.validate_python(event)
    except ValidationError as exc:
        return None, [_row_error(number, e, column) for e in exc.errors(include_input=False)]
    return model.model_dump(mode="json", exclude_none=True), []


def _content_id(community: str, when: str, data: dict[str, Any]) -> str:
    """A stable id from what the row says, without the person (ids travel in the clear)."""
    content = {k: v for k, v in data.items() if k != "person"}
    text = json.dumps([community, when, content], sort_keys=True, ensure_ascii=False)
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:24]


_FIELD_OF_PATH = {
    "data.person": "id_number",
    "data.temperature_c": "temperature_c",
    "data.building": "building",
    "data.compound": "compound",
    "data.grid": "grid",
    "data.symptoms": "symptoms",
    "time": "time",
    "subject": "",
}


def _row_error(number: int, error: Any, column: dict[str, str]) -> RowError:
    path = ".".join(str(p) for p in error["loc"] if "." not in str(p))
    field_name = next((f for p, f in _FIELD_OF_PATH.items() if path.startswith(p)), None)
    if field_name == "":
        return RowError(number, "(community)", "--community must be a 12-digit community code")
    name = column.get(field_name, path) if field_name else path
    return RowError(number, name, str(error["msg"]).removeprefix("Value error, "))
