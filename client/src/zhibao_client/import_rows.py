"""What every kind of imported sheet shares: row errors, drafts of events, a kind's spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


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


@dataclass(frozen=True)
class Draft:
    """An event a row yields, before the contract checks it: its type, time and data, and
    the field (column) its time came from."""

    type: str
    time: datetime
    data: dict[str, Any]
    time_field: str


@dataclass
class RowContext:
    """One data row: its number, its cells by field, the sheet's heading of each field."""

    number: int
    values: dict[str, Any]
    names: Mapping[str, str]
    zone: ZoneInfo
    #: The fields whose columns the sheet has.
    sheet_fields: frozenset[str] = frozenset()
    errors: list[RowError] = field(default_factory=list)

    def column(self, field_name: str) -> str:
        """The heading of a field's column as the sheet writes it."""
        return self.names.get(field_name, field_name)

    def fail(self, field_name: str, message: str) -> None:
        """Record a problem in a field's column."""
        self.errors.append(RowError(self.number, self.column(field_name), message))

    def parsed(self, field_name: str, parse: Callable[[Any], Any], message: str | None) -> Any:
        """The field's cell parsed (None when empty or wrong; wrong is recorded)."""
        if field_name not in self.values:
            return None
        try:
            return parse(self.values[field_name])
        except (TypeError, ValueError) as exc:
            self.fail(field_name, message or str(exc))
            return None

    def require(self, field_name: str) -> bool:
        """True when the field's cell is filled; a ``missing`` problem otherwise."""
        if field_name in self.values:
            return True
        self.fail(field_name, "missing")
        return False


RowBuilder = Callable[[RowContext], list[Draft]]
#: A header's extra reading (e.g. a dated daily-check column): the field, or None.
HeaderReader = Callable[[str], str | None]


@dataclass(frozen=True)
class SheetKind:
    """One kind of sheet: its headers, the columns that identify it, how a row becomes
    events and which event field each column feeds (for the contract's messages)."""

    name: str
    label: str
    columns: Mapping[str, str]
    canonical: Mapping[str, str]
    identifying: tuple[str, ...]
    build: RowBuilder
    paths: Mapping[str, str]
    #: Groups of fields of which the sheet must have at least one column each.
    required_any: tuple[tuple[str, ...], ...] = ()
    extra_header: HeaderReader | None = None
    #: Whether a row's time is part of its event id (False: the id is stable although the
    #: time is filled in at import, e.g. a daily close without a 上报时间).
    time_in_id: bool = True

    def field_of(self, header: str) -> str | None:
        """The field a (normalised) header names in this kind of sheet, or None."""
        if header in self.columns:
            return self.columns[header]
        return self.extra_header(header) if self.extra_header else None
