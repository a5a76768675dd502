"""Reading a community's sheet (xlsx or CSV) and understanding its Chinese headers and cells.

Only the columns listed in :data:`COLUMNS` are ever read; every other column
(姓名, 联系电话, 住址 …) is skipped without looking at its cells.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

#: Header spellings (normalised by :func:`normalise_header`) → field.
COLUMNS: dict[str, str] = {
    **dict.fromkeys(["身份证号", "身份证号码", "身份证", "证件号码", "证件号"], "id_number"),
    **dict.fromkeys(["体温", "测量体温", "体温测量", "温度", "体温值"], "temperature_c"),
    **dict.fromkeys(["楼栋", "楼号", "楼栋号", "栋", "楼"], "building"),
    **dict.fromkeys(["小区", "小区名称", "所在小区", "院落"], "compound"),
    **dict.fromkeys(["网格", "网格号", "所属网格"], "grid"),
    **dict.fromkeys(
        ["检测时间", "测温时间", "筛查时间", "排查时间", "登记时间", "日期时间", "时间"], "time"
    ),
    **dict.fromkeys(["检测日期", "筛查日期", "排查日期", "日期"], "date"),
    **dict.fromkeys(["症状", "有无症状", "主要症状", "身体状况"], "symptoms"),
    **dict.fromkeys(
        [
            "是否来自风险地区",
            "是否来自中高风险地区",
            "风险地区旅居史",
            "是否有风险地区旅居史",
            "14天内是否去过风险地区",
            "是否返乡人员",
        ],
        "travel_from_risk_area",
    ),
}
#: The column name used in messages for each field (when the sheet lacks it).
CANONICAL = {
    "id_number": "身份证号",
    "temperature_c": "体温",
    "building": "楼栋",
    "compound": "小区",
    "grid": "网格",
    "time": "检测时间",
    "date": "检测日期",
    "symptoms": "症状",
    "travel_from_risk_area": "是否来自风险地区",
}
SYMPTOMS: dict[str, str] = {
    **dict.fromkeys(["发热", "发烧", "高烧", "低烧"], "fever"),
    **dict.fromkeys(["咳嗽", "干咳"], "cough"),
    **dict.fromkeys(["咽痛", "咽喉痛", "嗓子疼", "喉咙痛"], "sore_throat"),
    **dict.fromkeys(["乏力", "疲劳"], "fatigue"),
    **dict.fromkeys(["气促", "呼吸困难", "胸闷气短"], "shortness_of_breath"),
    **dict.fromkeys(
        ["嗅味觉减退", "味觉嗅觉减退", "嗅觉减退", "味觉减退", "嗅觉丧失", "味觉丧失"],
        "loss_of_taste_or_smell",
    ),
    "腹泻": "diarrhea",
    **dict.fromkeys(["肌肉酸痛", "全身酸痛"], "muscle_ache"),
    **dict.fromkeys(["头痛", "头疼"], "headache"),
}
NO_SYMPTOMS = {"无", "没有", "正常", "否", "-", "/"}
YES = {"是", "有", "y", "yes", "true", "1", "√"}
NO = {"否", "无", "没有", "n", "no", "false", "0", "×", "-", "/"}
_TIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H:%M",
    "%Y.%m.%d %H:%M",
)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d")


def normalise_header(text: str) -> str:
    """A header without spaces, units in brackets (℃, °C) or full-width forms."""
    folded = unicodedata.normalize("NFKC", text)
    folded = re.sub(r"[(\[][^)\]]*[)\]]", "", folded)
    return re.sub(r"[\s:*℃°]|°C", "", folded).strip().lower()


#: The most rows and columns a sheet may have (a community's list is far smaller): a
#: workbook of a few kilobytes can declare a million rows of sixteen thousand columns,
#: which read whole would take gigabytes.
MAX_ROWS = 200_000
MAX_COLUMNS = 256
#: The most a workbook may unpack to (a sheet of MAX_ROWS ordinary rows is far less): a
#: small file can hold one cell of a gigabyte, which no row or column limit catches.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024


class SheetTooLarge(ValueError):
    """The sheet has more rows than :data:`MAX_ROWS` (its message says so)."""


def read_rows(path: Path) -> list[list[Any]]:
    """All rows of the first sheet (xlsx) or of a CSV file (UTF-8 with or without BOM, or
    GBK), each cut after :data:`MAX_COLUMNS` cells and without its empty cells at the end;
    :class:`SheetTooLarge` beyond :data:`MAX_ROWS` rows."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        _check_unpacked_size(path)
        book = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # the rows and cells there are, not those it declares
            return _bounded(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS))
        finally:
            book.close()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")  # sheets saved by Excel on Chinese Windows
    return _bounded(row[:MAX_COLUMNS] for row in csv.reader(io.StringIO(text)))


def _check_unpacked_size(path: Path) -> None:
    """:class:`SheetTooLarge` when the workbook's parts unpack to more than
    :data:`MAX_UNPACKED_BYTES` (as its zip directory declares them; a part that lies about
    its size fails zipfile's own check while it is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile:
        return  # not a workbook: openpyxl says so
    if unpacked > MAX_UNPACKED_BYTES:
        raise SheetTooLarge(
            f"the workbook unpacks to {unpacked / 2**20:,.0f} MB, more than "
            f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MB: save it again without the stray content, "
            "or split it"
        )


def _bounded(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for row in rows:
        if len(out) == MAX_ROWS:
            raise SheetTooLarge(
                f"the sheet has more than {MAX_ROWS:,} rows (or a cell far below its data): "
                "split it, or delete the rows below the data"
            )
        cells = list(row)
        while cells and cells[-1] in (None, ""):
            cells.pop()
        out.append(cells)
    return out


def cell_text(value: Any) -> str:
    """A cell as stripped text ('' when empty)."""
    return "" if value is None else str(value).strip()


def parse_temperature(value: Any) -> float:
    """36.8, '36.8', '36.8℃' → 36.8 (ValueError otherwise)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = unicodedata.normalize("NFKC", cell_text(value))
    return float(re.sub(r"\s*(℃|°C|°|度)$", "", text, flags=re.IGNORECASE))


def parse_time(value: Any, day: Any, zone: ZoneInfo) -> datetime:
    """The screening's time from a date-time cell, or a date cell plus a time cell.

    A date without a time counts as the start of that day (local time).
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, time) or _is_bare_time(value) or not cell_text(value):
        if day is None or not cell_text(day):
            raise ValueError("no date")
        clock = value if isinstance(value, time) else _as_clock(value)
        moment = datetime.combine(_as_date(day), clock)
    else:
        moment = _parse_datetime_text(cell_text(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _is_bare_time(value: Any) -> bool:
    text = value.strip() if isinstance(value, str) else ""
    return re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", text) is not None


def _as_clock(value: Any) -> time:
    text = cell_text(value)
    return (
        time.fromisoformat(text.zfill(len(text) + 1) if len(text) in (4, 7) else text)
        if text
        else time(0)
    )


def _parse_datetime_text(text: str) -> datetime:
    text = unicodedata.normalize("NFKC", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for pattern in _TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise ValueError("not a date and time")


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = unicodedata.normalize("NFKC", cell_text(value))
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError("not a date")


def parse_symptoms(value: Any) -> list[str]:
    """'咳嗽、乏力' → ['cough', 'fatigue']; '无' → []; ValueError names an unknown one."""
    parts = [p.strip() for p in re.split(r"[,，、;；/\s]+", cell_text(value)) if p.strip()]
    found: list[str] = []
    for part in parts:
        if part in NO_SYMPTOMS:
            continue
        if part not in SYMPTOMS:
            raise ValueError(f"unknown symptom {part!r}; use e.g. 发热、咳嗽、乏力 or 无")
        if SYMPTOMS[part] not in found:
            found.append(SYMPTOMS[part])
    return found


def parse_yes_no(value: Any) -> bool:
    """是/否 (and common variants) → bool; ValueError otherwise."""
    text = cell_text(value).lower()
    if text in YES:
        return True
    if text in NO or not text:
        return False
    raise ValueError("must be 是 or 否")


def header_text(value: Any) -> str:
    """A header cell as text: a date cell (a dated daily-check column) as YYYY-MM-DD."""
    if isinstance(value, datetime | date):
        return f"{value:%Y-%m-%d}"
    return cell_text(value)


def parse_date(value: Any) -> date:
    """A day from a date cell or text (2026-11-25, 2026/11/25, 2026年11月25日, 2026.11.25)."""
    return _as_date(value)


def parse_moment(value: Any, zone: ZoneInfo) -> datetime:
    """A moment from a date-time cell or text; a bare date is the start of that day."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0), zone)
    try:
        return parse_time(value, None, zone)
    except ValueError:
        return datetime.combine(_as_date(value), time(0), zone)


def parse_count(value: Any) -> int:
    """A non-negative whole number (3, '3', 3.0); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a count")
    number = float(value) if isinstance(value, int | float) else float(cell_text(value))
    if number < 0 or number != int(number):
        raise ValueError("must be a whole number, 0 or more")
    return int(number)
