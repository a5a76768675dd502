"""Importing a community's door-to-door screening sheet (Excel or CSV, Chinese headers).

Every row is validated with the shared event contract first; if any row is
wrong, each problem is reported by row number and column and nothing is sent.
Names (姓名) are never read into events, and resident ID numbers never appear
in messages. Event ids derive from the file's content and the row, so
importing the same sheet twice sends duplicates only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from zhibao_shared.events import REPORTED_EVENT

#: Accepted header spellings → field.
COLUMNS: dict[str, str] = {
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "证件号码": "id_number",
    "体温": "temperature_c",
    "体温(℃)": "temperature_c",
    "体温（℃）": "temperature_c",
    "楼栋": "building",
    "楼号": "building",
    "小区": "compound",
    "网格": "grid",
    "检测时间": "time",
    "测温时间": "time",
    "时间": "time",
    "症状": "symptoms",
    "是否来自风险地区": "travel_from_risk_area",
    "风险地区旅居史": "travel_from_risk_area",
}
IGNORED = {"姓名", "序号", "联系电话", "电话", "备注"}
SYMPTOMS = {
    "发热": "fever",
    "咳嗽": "cough",
    "咽痛": "sore_throat",
    "乏力": "fatigue",
    "气促": "shortness_of_breath",
    "呼吸困难": "shortness_of_breath",
    "嗅味觉减退": "loss_of_taste_or_smell",
    "腹泻": "diarrhea",
    "肌肉酸痛": "muscle_ache",
    "头痛": "headache",
}
YES = {"是", "有", "y", "yes", "true", "1"}
FIELD_COLUMN = {
    "data.person.id_number": "身份证号",
    "data.temperature_c": "体温",
    "data.building": "楼栋",
    "data.compound": "小区",
    "time": "检测时间",
    "data.symptoms": "症状",
}


@dataclass(frozen=True)
class RowError:
    """One problem: the sheet's row number (header = 1), the column and what is wrong."""

    row: int
    column: str
    message: str


class ImportRefused(ValueError):
    """The sheet has errors; nothing was sent."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the sheet; nothing was sent")
        self.errors = errors


def read_rows(path: Path) -> list[list[Any]]:
    """All rows of the first sheet (xlsx) or of a CSV file (UTF-8, with or without BOM)."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    text = path.read_bytes().decode("utf-8-sig")
    return [list(row) for row in csv.reader(io.StringIO(text))]


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _symptoms(text: str) -> list[str] | str:
    parts = [p for p in text.replace("，", ",").replace("、", ",").split(",") if p.strip()]
    unknown = [p for p in parts if p.strip() not in SYMPTOMS and p.strip() != "无"]
    if unknown:
        return f"unknown symptom {unknown[0]!r}; use {', '.join(SYMPTOMS)} or 无"
    return [SYMPTOMS[p.strip()] for p in parts if p.strip() in SYMPTOMS]


def _time(value: Any, zone: ZoneInfo) -> str:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(_cell(value))
    return (when if when.tzinfo else when.replace(tzinfo=zone)).isoformat()


def build_events(
    path: Path, community: str, timezone: str = "Asia/Shanghai"
) -> list[dict[str, Any]]:
    """Validated ``zhibao.screening.v1`` events, or :class:`ImportRefused` with every problem."""
    rows = read_rows(path)
    if not rows:
        raise ImportRefused([RowError(1, "(sheet)", "the sheet is empty")])
    header = [_cell(h) for h in rows[0]]
    unknown = [h for h in header if h and h not in COLUMNS and h not in IGNORED]
    errors = [RowError(1, h, "unknown column") for h in unknown]
    fields = {i: COLUMNS[h] for i, h in enumerate(header) if h in COLUMNS}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    zone = ZoneInfo(timezone)
    events = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(_cell(v) for v in row):
            continue
        event, row_errors = _row_event(row, fields, number, community, digest, zone)
        errors += row_errors
        if event is not None:
            events.append(event)
    if errors:
        raise ImportRefused(errors)
    return events


def _row_event(
    row: list[Any], fields: dict[int, str], number: int, community: str, digest: str, zone: ZoneInfo
) -> tuple[dict[str, Any] | None, list[RowError]]:
    values = {fields[i]: v for i, v in enumerate(row) if i in fields and _cell(v)}
    errors: list[RowError] = []
    data: dict[str, Any] = {"site": "door_to_door"}
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"import-{digest}-{number}",
        "source": f"/{community}/import",
        "type": "zhibao.screening.v1",
        "subject": community,
        "data": data,
    }
    try:
        event["time"] = _time(values.get("time"), zone)
    except (TypeError, ValueError):
        errors.append(RowError(number, "检测时间", "not a date and time, e.g. 2026-11-25 08:30"))
    for name in ("temperature_c", "building", "compound", "grid"):
        if name in values:
            data[name] = _cell(values[name])
    if "id_number" in values:
        data["person"] = {"id_number": _cell(values["id_number"])}
    if "travel_from_risk_area" in values:
        data["travel_from_risk_area"] = _cell(values["travel_from_risk_area"]).lower() in YES
    if "symptoms" in values:
        parsed = _symptoms(_cell(values["symptoms"]))
        if isinstance(parsed, str):
            errors.append(RowError(number, "症状", parsed))
        else:
            data["symptoms"] = parsed
    if errors:
        return None, errors
    try:
        REPORTED_EVENT.validate_python(event)
    except ValidationError as exc:
        return None, [_row_error(number, e) for e in exc.errors(include_input=False)]
    return event, []


def _row_error(number: int, error: Any) -> RowError:
    path = ".".join(str(p) for p in error["loc"] if "." not in str(p))
    path = path.replace("person.id_number.id_number", "person.id_number")
    column = FIELD_COLUMN.get(path, path)
    return RowError(number, column, str(error["msg"]).removeprefix("Value error, "))
