"""The audit trail as rows of the read model (pure: no I/O).

A message of stream ZHIBAO_AUDIT holds one or more records as JSON lines. Each
record becomes rows keyed by where it came from, so a redelivered message (or
one read by several aggregator partitions sharing a database) maps to the same
keys and is stored once:

* an intake submission: one row per submitted event (``item`` = its index), with
  the event's identity, type, outcome and rejection code; a submission refused as
  a whole (a single record, as intake wrote them before it counted a token's
  refusals per window) one row with outcome ``refused``;
* a tally of refusals in a window: one row (``kind`` tally), under the narrowest unit
  covering the token's scopes when a token was refused, with no unit otherwise;
* an action record: one row.

Token creations and revocations come from the token store's own table
(:func:`token_action_rows`): one row per scope of the token, so each unit's
operators see the tokens made for their units.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic_core import from_json

from zhibao_aggregator.domain.calendar import Calendar
from zhibao_shared.events import MAX_SOURCE_LENGTH
from zhibao_shared.tokens import TokenAction

#: Where a row came from: the audit stream, or the token store's action table.
STREAM = "stream"
TOKENS = "tokens"
#: The most characters kept of a free-text field (ids, names, codes). An accepted
#: event's identity is kept whole (the contract's id is shorter, its source longer).
_TEXT = 200
_UNIT_LENGTHS = (4, 6, 9, 12)
#: Intake's code for an event naming a unit its token does not cover.
FORBIDDEN = "forbidden"
#: The status of an event intake refused.
REJECTED = "rejected"

Row = dict[str, Any]


def sort_key(at: datetime, origin: str, seq: int, line: int, item: int) -> str:
    """A key ordering rows by time, then by origin and position (unique per row);
    keyset pagination walks it from the newest down."""
    return f"{_stamp(at)}|{origin}|{seq:020d}|{line:06d}|{item:06d}"


def _stamp(at: datetime) -> str:
    # isoformat is several times faster than strftime: its first 26 characters are
    # strftime's "%Y-%m-%dT%H:%M:%S.%f" (the rest is the offset, +00:00 in UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")[:26]


def trail_rows(seq: int, data: bytes, calendar: Calendar) -> list[Row]:
    """The rows of one message of the audit stream (its stream sequence ``seq``).

    Lines that are not JSON objects with a readable ``at`` are skipped: the trail is
    written by the services, so such a line is a defect, not a record.
    """
    rows: list[Row] = []
    for line, text in enumerate(data.splitlines()):
        record = _record(text)
        if record is None:
            continue
        at = _moment(record.get("at"))
        if at is None:
            continue
        at, day = at.astimezone(UTC), calendar.day(at)
        # a submission's rows (one per event) differ only in their item
        prefix = sort_key(at, STREAM, seq, line, 0)[:-6]
        for item, fields in enumerate(_items(record)):
            key = f"{prefix}{item:06d}"
            rows.append(_row(STREAM, seq, line, item, at, day, key) | fields)
    return rows


def token_action_rows(action: TokenAction, calendar: Calendar) -> list[Row]:
    """One row per scope of a created or revoked token."""
    at = action.at.astimezone(UTC)
    detail = {"name": action.name, "role": action.role, "scopes": list(action.scopes)}
    return [
        _row(
            TOKENS,
            action.seq,
            0,
            item,
            at,
            calendar.day(at),
            sort_key(at, TOKENS, action.seq, 0, item),
        )
        | _EMPTY
        | {
            "kind": "action",
            "service": "tokens",
            "type": action.action,
            "outcome": "done",
            "unit": scope,
            "target": action.token,
            "detail": json.dumps(detail, ensure_ascii=False),
        }
        for item, scope in enumerate(action.scopes)
    ]


def _record(text: bytes) -> dict[str, Any] | None:
    try:
        # pydantic-core's parser: ~3x faster than json.loads; it refuses what the services
        # never write (nesting deeper than 200, a byte-order mark, lone surrogates)
        record = from_json(text)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return record if isinstance(record, dict) else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _row(origin: str, seq: int, line: int, item: int, at: datetime, day: date, key: str) -> Row:
    """The columns every row has: where it came from, its sort key (see :func:`sort_key`)
    and its moment."""
    return {
        "origin": origin,
        "seq": seq,
        "line": line,
        "item": item,
        "sort_key": key,
        "at": at,
        "day": day,
    }


#: Every optional column, unset (merged into new rows, never changed itself).
_EMPTY: Row = dict.fromkeys(
    (
        "token",
        "token_name",
        "person",
        "unit",
        "event_id",
        "event_source",
        "event_time",
        "code",
        "status",
        "channel",
        "target",
        "detail",
    )
)


def _items(record: Mapping[str, Any]) -> list[Row]:
    """The per-row fields of one record (several for a submission of several events)."""
    who = _EMPTY | {
        "token": _text(record.get("token")),
        "token_name": _text(record.get("token_name")),
        "person": _text(record.get("person")),
    }
    if isinstance(record.get("action"), str):
        return [who | _action(record)]
    status = record.get("status") if isinstance(record.get("status"), int) else None
    submission = who | {
        "service": "intake",
        "status": status,
        "channel": _text(record.get("channel")),
    }
    reporter = _Reporter.of(record.get("scopes"))
    if "count" in record:  # a token's tally is filed under its units, as its refusals are
        return [submission | _tally(record) | {"unit": reporter.unit}]
    events = record.get("events")
    if not isinstance(events, list) or not events:
        # filed under the token's units (the narrowest covering its scopes), as readable
        # to their operators as the token's rejected events
        refused = {"kind": "submission", "type": None, "outcome": "refused"}
        why = {"code": _text(record.get("reason")), "unit": reporter.unit}
        return [submission | refused | why]
    return [submission | _event(event, reporter) for event in events if isinstance(event, dict)]


def _action(record: Mapping[str, Any]) -> Row:
    detail = record.get("detail")
    return {
        "kind": "action",
        "service": _text(record.get("service")),
        "type": _text(record.get("action")),
        "outcome": "done",
        "unit": _unit(record.get("unit")),
        "target": _text(record.get("target")),
        "detail": json.dumps(detail if isinstance(detail, dict) else {}, ensure_ascii=False),
    }


def _tally(record: Mapping[str, Any]) -> Row:
    detail = {k: record.get(k) for k in ("from", "remote", "reason", "count")}
    return {
        "kind": "tally",
        "type": None,
        "outcome": "refused",
        "code": _text(record.get("reason")),
        "detail": json.dumps(detail, ensure_ascii=False),
    }


def _event(event: Mapping[str, Any], reporter: _Reporter) -> Row:
    unit = _unit(event.get("subject"))
    filed: Row = {"unit": unit, **_correction(event.get("correction"))}
    if event.get("status") == REJECTED and not reporter.covers(event.get("code"), unit):
        # another unit's code, named by a token not covering it: the reporter's row (its
        # scorecard, its trail), not the named unit's (anyone could lower its score)
        filed = {"unit": reporter.unit, "detail": json.dumps({"claimed_unit": unit})}
    return {
        "kind": "event",
        "type": _text(event.get("type")),
        "outcome": _text(event.get("status")),
        "code": _text(event.get("code")),
        "event_id": _text(event.get("id")),
        "event_source": _text(event.get("source"), MAX_SOURCE_LENGTH),
        "event_time": _moment(event.get("time")),
        **filed,
    }


@dataclass(frozen=True)
class _Reporter:
    """The scopes of the token that submitted a record (None: not known, as in records
    written before intake noted them), and the narrowest unit covering them all."""

    scopes: tuple[str, ...] | None
    unit: str | None

    @classmethod
    def of(cls, scopes: Any) -> _Reporter:
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) for s in scopes)
        ):
            return cls(None, None)
        first, last = min(scopes), max(scopes)  # their common prefix is every scope's
        same = next(
            (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first)
        )
        shared = first[:same]
        unit = next((shared[:n] for n in reversed(_UNIT_LENGTHS) if n <= len(shared)), None)
        return cls(tuple(scopes), unit)

    def covers(self, code: Any, unit: str | None) -> bool:
        """Whether a refused event naming ``unit`` (refused with ``code``) is that unit's
        to be filed under: not when refused as forbidden, nor when the token's scopes
        (when known) do not cover it (an invalid event is refused before its scope is
        checked)."""
        if code == FORBIDDEN:
            return False
        return unit is None or self.scopes is None or unit.startswith(self.scopes)


def _correction(correction: Any) -> Row:
    """A correction's line keeps what it corrects, how and why, as its ``detail``."""
    if not isinstance(correction, dict):
        return {}
    return {"detail": json.dumps(correction, ensure_ascii=False)}


def _text(value: Any, limit: int = _TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _unit(value: Any) -> str | None:
    """A unit code, or None for anything else (a masked or malformed subject)."""
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) in _UNIT_LENGTHS
    ):
        return value
    return None
