"""Importing the sheets a community keeps (Excel or CSV, Chinese headers): door-to-door
screenings, isolation rosters, case lists and daily closes (:mod:`zhibao_client.sheet_kinds`).

The kind is recognised from the header row (or named with ``kind``). Every row is
validated with the shared event contract first; if any row is wrong, each problem is
reported by row number and (Chinese) column and nothing is sent. Names (姓名) and other
personal columns are never read, and resident ID numbers never appear in messages.

Event ids are derived from the row's content (never from the ID number: an event id
travels in the clear) plus its occurrence among identical rows, so importing the same
sheet again — also after re-saving it, inserting rows or correcting another row — sends
duplicates only for the rows already sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from zhibao_client.import_rows import Draft, ImportRefused, RowContext, RowError, SheetKind
from zhibao_client.sheet import cell_text, header_text, normalise_header
from zhibao_client.sheet_kinds import KIND_NAMES, KINDS
from zhibao_shared.events import REPORTED_EVENT

__all__ = ["ImportRefused", "RowError", "SheetImport", "build_events"]

_HEADER_SEARCH_ROWS = 10  # title rows above the header are common


@dataclass
class SheetImport:
    """The validated events of a sheet, its kind, its data rows and the columns not read."""

    events: list[dict[str, Any]]
    ignored_columns: list[str] = field(default_factory=list)
    kind: str = "screening"
    rows: int = 0


@dataclass(frozen=True)
class _Layout:
    kind: SheetKind
    header_row: int  # 1-based
    fields: dict[int, str]  # column index → field
    names: dict[str, str]  # field → the sheet's own header text
    ignored: list[str]


def build_events(
    path: Path, community: str, timezone: str = "Asia/Shanghai", kind: str | None = None
) -> SheetImport:
    """Validated events of a sheet, or :class:`ImportRefused` with every problem.

    ``kind`` (screening, isolation, case, daily_report) skips recognising the sheet.
    """
    rows = [list(r) for r in read_sheet(path)]
    layout = _layout(rows, kind)
    zone = ZoneInfo(timezone)
    errors: list[RowError] = []
    events: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    counted = 0
    for number, row in enumerate(rows[layout.header_row :], start=layout.header_row + 1):
        if not any(cell_text(row[i]) for i in layout.fields if i < len(row)):
            continue
        counted += 1
        row_events, row_errors = _row_events(row, layout, number, community, zone)
        errors += row_errors
        for event in row_events:
            occurrence = seen.get(event["id"], 0)
            seen[event["id"]] = occurrence + 1
            event["id"] = f"{event['id']}-{occurrence}"
            events.append(event)
    if errors:
        raise ImportRefused(errors)
    return SheetImport(events, layout.ignored, layout.kind.name, counted)


def read_sheet(path: Path) -> list[list[Any]]:
    """The sheet's rows (:func:`~zhibao_client.sheet.read_rows`), or :class:`ImportRefused`
    when it is empty or too large."""
    from zhibao_client.sheet import SheetTooLarge, read_rows

    try:
        rows = read_rows(path)
    except SheetTooLarge as exc:
        raise ImportRefused([RowError(1, "(sheet)", str(exc))]) from None
    if not rows:
        raise ImportRefused([RowError(1, "(sheet)", "the sheet is empty")])
    return rows


def _layout(rows: list[list[Any]], kind: str | None) -> _Layout:
    kinds = [k for k in KINDS if kind is None or k.name == kind]
    if not kinds:
        raise ImportRefused([RowError(1, "(sheet)", f"unknown kind {kind!r}; one of {KIND_NAMES}")])
    for index, row in enumerate(rows[:_HEADER_SEARCH_ROWS]):
        headers = [header_text(h) for h in row]
        for candidate in kinds:
            found = _fields(candidate, headers)
            if set(candidate.identifying) <= set(found.values()):
                return _checked(candidate, index + 1, headers, found)
    wanted = [
        RowError(1, k.canonical[f], f"column missing for a {k.label} (no header row found)")
        for k in kinds
        for f in k.identifying
    ]
    raise ImportRefused(wanted)


def _fields(kind: SheetKind, headers: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, header in enumerate(headers):
        found = kind.field_of(normalise_header(header)) if header else None
        if found is not None:
            out[i] = found
    return out


def _checked(
    kind: SheetKind, header_row: int, headers: list[str], found: dict[int, str]
) -> _Layout:
    names = {f: headers[i] for i, f in reversed(list(found.items()))}
    for group in kind.required_any:
        if not any(f in names for f in group):
            raise ImportRefused([RowError(header_row, kind.canonical[group[0]], "column missing")])
    ignored = [h for i, h in enumerate(headers) if h and i not in found]
    return _Layout(kind, header_row, found, names, ignored)


def _row_events(
    row: list[Any], layout: _Layout, number: int, community: str, zone: ZoneInfo
) -> tuple[list[dict[str, Any]], list[RowError]]:
    values = {f: row[i] for i, f in layout.fields.items() if i < len(row) and cell_text(row[i])}
    names = {**layout.kind.canonical, **layout.names}
    context = RowContext(number, values, names, zone, frozenset(layout.names))
    drafts = layout.kind.build(context)
    reported = {e.column for e in context.errors}
    events: list[dict[str, Any]] = []
    contract: list[RowError] = []
    for draft in drafts:
        event, problems = _validated(number, community, draft, layout.kind, context)
        contract += [p for p in problems if p.column not in reported and p not in contract]
        if event is not None:
            events.append(event)
    errors = context.errors + contract
    return ([], errors) if errors else (events, [])


def _validated(
    number: int, community: str, draft: Draft, kind: SheetKind, row: RowContext
) -> tuple[dict[str, Any] | None, list[RowError]]:
    when = draft.time.isoformat()
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": _content_id(community, draft.type, when if kind.time_in_id else "", draft.data),
        "source": f"/{community}/import",
        "type": draft.type,
        "subject": community,
        "time": when,
        "data": draft.data,
    }
    try:
        model = REPORTED_EVENT.validate_python(event)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        return None, [_row_error(number, e, kind, draft, row) for e in errors]
    return model.model_dump(mode="json", exclude_none=True), []


def _content_id(community: str, event_type: str, when: str, data: dict[str, Any]) -> str:
    """A stable id from what the row says, without the person (ids travel in the clear)."""
    content = {k: v for k, v in data.items() if k != "person"}
    parts: list[Any] = [community, when, content]
    if event_type != "zhibao.screening.v1":  # screening ids stay as they were
        parts.insert(1, event_type)
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _row_error(number: int, error: Any, kind: SheetKind, draft: Draft, row: RowContext) -> RowError:
    path = ".".join(str(p) for p in error["loc"] if "." not in str(p))
    paths = {**kind.paths, "time": draft.time_field}
    if draft.time_field.startswith("check:"):
        paths["data.temperature_c"] = draft.time_field
    field_name = next((f for p, f in paths.items() if path.startswith(p)), None)
    if field_name == "":
        return RowError(number, "(community)", "--community must be a 12-digit community code")
    name = row.column(field_name) if field_name else path
    return RowError(number, name, str(error["msg"]).removeprefix("Value error, "))
