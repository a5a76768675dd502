"""Reading events for ``zhibao send``: a JSON array, one JSON object, or JSON lines."""

from __future__ import annotations

import json
from typing import Any


class EventFileError(ValueError):
    """The input is neither JSON nor JSON lines (the message names the line)."""


def parse_events(text: str) -> list[Any]:
    """Events from a JSON array, a single JSON object, or one JSON value per line."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        return _json_lines(stripped)
    return list(whole) if isinstance(whole, list) else [whole]


def _json_lines(text: str) -> list[Any]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise EventFileError(f"line {number}: not JSON ({exc.msg})") from None
    return events
