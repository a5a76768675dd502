"""Reading a command centre's task list (xlsx or CSV, Chinese headers) into tasks to issue.

The lists command centres receive (时空伴随者, 密接 …) name each person
(姓名, 身份证号, 联系电话, 现住址), what to check (核查要求), the deadline
(完成时限) and the community (所属社区, by code or by name). Every row is
checked against the response service's own task model
(:class:`zhibao_response.domain.tasks.TaskIn`) before anything is sent; each
problem names the sheet's row number and column, never the cell's value.

The reading of the file, of its cells and the error reporting are the
screening import's (:mod:`zhibao_client.sheet`, :mod:`zhibao_client.importer`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from zhibao_client.importer import ImportRefused, RowError, read_sheet
from zhibao_client.sheet import cell_text, normalise_header, parse_time
from zhibao_response.domain.tasks import TaskIn
from zhibao_shared.hierarchy import Level, Registry

#: Header spellings (normalised by :func:`normalise_header`) → field.
COLUMNS: dict[str, str] = {
    **dict.fromkeys(["姓名", "人员姓名", "被核查人", "被核查人姓名"], "name"),
    **dict.fromkeys(["身份证号", "身份证号码", "身份证", "证件号码", "证件号"], "id_number"),
    **dict.fromkeys(
        ["联系电话", "电话", "手机", "手机号", "手机号码", "联系方式", "电话号码"], "phone"
    ),
    **dict.fromkeys(["现住址", "住址", "现居住地址", "居住地址", "现居住地", "地址"], "address"),
    **dict.fromkeys(["核查要求", "任务要求", "工作要求", "备注", "说明"], "note"),
    **dict.fromkeys(["完成时限", "截止时间", "完成时间", "办结时限", "时限"], "due"),
    **dict.fromkeys(["所属社区", "社区", "社区名称", "社区代码", "所在社区"], "unit"),
    **dict.fromkeys(["任务类型", "类型", "核查类型", "人员类型"], "kind"),
    **dict.fromkeys(["小区", "小区名称", "所在小区", "院落"], "compound"),
}
#: The column named in messages for each field (when the sheet lacks it).
CANONICAL = {
    "name": "姓名",
    "id_number": "身份证号",
    "phone": "联系电话",
    "address": "现住址",
    "note": "核查要求",
    "due": "完成时限",
    "unit": "所属社区",
    "kind": "任务类型",
    "compound": "小区",
}
#: Task kinds as the lists write them (the English kind itself is accepted too).
KINDS: dict[str, str] = {
    **dict.fromkeys(["时空伴随", "时空伴随者", "时空伴随者核查"], "verify_companion"),
    **dict.fromkeys(["密接", "密切接触者", "密接核查", "次密接", "密接者"], "verify_contact"),
    **dict.fromkeys(["消杀", "消毒", "环境消杀"], "disinfect"),
    **dict.fromkeys(["核酸检测", "核酸", "全员核酸"], "testing_round"),
    **dict.fromkeys(["配送", "物资配送", "送药"], "deliver"),
}
_HEADER_SEARCH_ROWS = 10  # title rows above the header are common
#: A deadline given as a date alone means by the end of that day (local time).
END_OF_DAY = time(23, 59)
#: Where a problem of the task model lies → the field (column) it belongs to.
_FIELD_OF_PATH = (
    ("person", "id_number"),
    ("contact.name", "name"),
    ("contact.phone", "phone"),
    ("contact.address", "address"),
    ("note", "note"),
    ("due", "due"),
    ("unit", "unit"),
    ("kind", "kind"),
    ("compound", "compound"),
)
#: Plain messages for the model's rules whose own wording names a regular expression.
_PLAIN = {
    "phone": "not a phone number (digits, e.g. 13912345678)",
    "kind": "not a task kind (e.g. 时空伴随 or verify_companion)",
}


@dataclass(frozen=True)
class SheetTask:
    """One valid row: its number in the sheet and the task it issues (JSON-ready)."""

    row: int
    body: dict[str, Any] = field(repr=False)


@dataclass
class TaskSheet:
    """The valid tasks of a sheet, where each column's header is, and the columns not read."""

    tasks: list[SheetTask]
    headers: dict[str, str]
    ignored_columns: list[str] = field(default_factory=list)

    def column(self, field_name: str) -> str:
        """The sheet's own header for a field (the usual one when the sheet lacks it)."""
        return self.headers.get(field_name, CANONICAL.get(field_name, field_name))


@dataclass(frozen=True)
class SheetOptions:
    """What the command line adds to the sheet."""

    registry: Registry
    now: datetime
    timezone: str = "Asia/Shanghai"
    kind: str | None = None  # for rows without 任务类型
    community: str | None = None  # for sheets without 所属社区


@dataclass(frozen=True)
class _Layout:
    header_row: int  # 1-based
    fields: dict[int, str]  # column index → field
    names: dict[str, str]  # field → the sheet's own header text
    ignored: list[str]


def read_task_sheet(path: Path, options: SheetOptions) -> TaskSheet:
    """The sheet's tasks, or :class:`ImportRefused` naming every problem (row and column)."""
    rows = read_sheet(path)
    layout = _layout(rows, options)
    names = CommunityNames(options.registry)
    zone = ZoneInfo(options.timezone)
    errors: list[RowError] = []
    tasks: list[SheetTask] = []
    for number, row in enumerate(rows[layout.header_row :], start=layout.header_row + 1):
        values = {f: row[i] for i, f in layout.fields.items() if i < len(row) and cell_text(row[i])}
        if not values:
            continue
        body, row_errors = _row_task(values, number, layout, names, options, zone)
        errors += row_errors
        if body is not None:
            tasks.append(SheetTask(number, body))
    if errors:
        raise ImportRefused(errors)
    if not tasks:
        raise ImportRefused([RowError(layout.header_row + 1, "(sheet)", "no task rows")])
    return TaskSheet(tasks, layout.names, layout.ignored)


def _layout(rows: list[list[Any]], options: SheetOptions) -> _Layout:
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        headers = [cell_text(h) for h in row]
        fields = {
            i: COLUMNS[normalise_header(h)]
            for i, h in enumerate(headers)
            if normalise_header(h) in COLUMNS
        }
        if len(set(fields.values())) < 2:
            continue
        names = {f: headers[i] for i, f in reversed(list(fields.items()))}
        missing = [f for f in _required_columns(options) if f not in names]
        if missing:
            raise ImportRefused(
                [RowError(index + 1, CANONICAL[f], "column missing") for f in missing]
            )
        ignored = [h for i, h in enumerate(headers) if h and i not in fields]
        return _Layout(index + 1, fields, names, ignored)
    raise ImportRefused(
        [
            RowError(1, CANONICAL[f], "column missing (no header row found)")
            for f in _required_columns(options)
        ]
    )


def _required_columns(options: SheetOptions) -> list[str]:
    return ["due"] + ([] if options.community else ["unit"])


def _row_task(
    values: dict[str, Any],
    number: int,
    layout: _Layout,
    names: CommunityNames,
    options: SheetOptions,
    zone: ZoneInfo,
) -> tuple[dict[str, Any] | None, list[RowError]]:
    column = {f: layout.names.get(f, CANONICAL[f]) for f in CANONICAL}
    errors: list[RowError] = []

    def check(name: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except ValueError as exc:
            errors.append(RowError(number, column[name], str(exc)))
            return None

    unit = check("unit", lambda: names.resolve(cell_text(values.get("unit")) or options.community))
    kind = check("kind", lambda: _kind(values.get("kind"), options.kind))
    due = check("due", lambda: _due(values.get("due"), zone, options.now))
    body: dict[str, Any] = {
        "unit": unit or "000000000000",  # placeholders let the model check the other cells
        "kind": kind or "unknown",
        "due": (due or options.now).isoformat(),
    }
    if "id_number" in values:
        body["person"] = {"id_number": _text(values["id_number"])}
    contact = {f: _text(values[f]) for f in ("name", "phone", "address") if f in values}
    if contact:
        body["contact"] = contact
    for name in ("note", "compound"):
        if name in values:
            body[name] = _text(values[name])
    try:
        task = TaskIn.model_validate(body)
    except ValidationError as exc:
        reported = {e.column for e in errors}
        for problem in exc.errors(include_input=False):
            error = _row_error(number, problem, column)
            if error.column not in reported:
                reported.add(error.column)
                errors.append(error)
    else:
        if not errors:
            return task.model_dump(mode="json", exclude_none=True), []
    return None, errors


def _row_error(number: int, problem: Any, column: dict[str, str]) -> RowError:
    path = ".".join(str(p) for p in problem["loc"])
    name = next((f for prefix, f in _FIELD_OF_PATH if path.startswith(prefix)), None)
    if name is None:
        return RowError(number, path, str(problem["msg"]))
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "string_pattern_mismatch":
        message = _PLAIN.get(name, "not in the expected form")
    return RowError(number, column[name], message)


def _text(value: Any) -> str:
    """A cell as text; a whole number stored as a float loses its ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return cell_text(value)


def _kind(value: Any, default: str | None) -> str:
    text = unicodedata.normalize("NFKC", cell_text(value))
    if not text:
        if default is None:
            raise ValueError("missing (or give --kind for rows without one)")
        return default
    return KINDS.get(text, text)


def _due(value: Any, zone: ZoneInfo, now: datetime) -> datetime:
    if value is None or not cell_text(value):
        raise ValueError("missing")
    try:
        due = _deadline(value, zone)
    except (TypeError, ValueError):
        raise ValueError("not a date and time, e.g. 2026-12-04 18:00 or 2026-12-04") from None
    if due <= now:
        raise ValueError("already past (the deadline must lie ahead)")
    return due


def _deadline(value: Any, zone: ZoneInfo) -> datetime:
    """A date and time; a date alone (or an Excel date at midnight) is that day's end."""
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return datetime.combine(value.date(), END_OF_DAY, zone)
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, END_OF_DAY, zone)
    text = unicodedata.normalize("NFKC", cell_text(value))
    if ":" not in text:
        return datetime.combine(parse_time(None, text, zone).date(), END_OF_DAY, zone)
    return parse_time(text, None, zone)


class CommunityNames:
    """Communities by 12-digit code or by name (丰登社区, or 丰登 without 社区)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._by_name: dict[str, list[str]] = {}
        for unit in registry.at_level(Level.COMMUNITY):
            for name in {unit.name, unit.name.removesuffix("社区"), unit.name_en}:
                if name:
                    self._by_name.setdefault(_folded(name), []).append(unit.code)

    def is_community(self, code: str) -> bool:
        """True when ``code`` is a community of the registry."""
        return self._registry.is_community(code)

    def resolve(self, text: str | None) -> str:
        """The community's code; ValueError saying why when there is none or several."""
        if not text:
            raise ValueError("missing (or give --community)")
        text = unicodedata.normalize("NFKC", text).strip()
        if text.isdigit():
            if self._registry.is_community(text):
                return text
            raise ValueError("not a community code of the registry")
        codes = self._by_name.get(_folded(text), [])
        if len(codes) == 1:
            return codes[0]
        if codes:
            raise ValueError(f"{len(codes)} communities have this name; give the 12-digit code")
        raise ValueError("not a community of the registry (give its name or 12-digit code)")


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).replace(" ", "").lower()
