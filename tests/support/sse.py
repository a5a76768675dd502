"""Reading the command-centre page's server-sent events (``/v1/live``) in tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator


class Events:
    """Reads server-sent events from an open stream."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def next(self) -> tuple[str, dict[str, object]]:
        """The next event's name and JSON data."""
        name, data = "", ""
        for line in self._lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, json.loads(data)
        raise EOFError("stream ended")

    def until(self, wanted: str, unit: str, timeout_s: float = 20) -> dict[str, object]:
        """The first ``wanted`` event about ``unit``; everything seen before is returned
        in ``self.seen``."""
        self.seen: list[tuple[str, dict[str, object]]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            name, data = self.next()
            self.seen.append((name, data))
            if name == wanted and data.get("unit") == unit:
                return data
        raise AssertionError(f"no {wanted} for {unit}; saw {self.seen}")

    def wait_live(self, timeout_s: float = 20) -> None:
        """Until the hub says its NATS subscription is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            name, data = self.next()
            if name in ("hello", "heartbeat") and data.get("live"):
                return
        raise AssertionError("the live hub never connected to NATS")
