"""Submitting events to intake with a durable spool: delivered exactly once in effect.

Every event is spooled (fsync'd) before it is sent and removed only after
intake answered for it (accepted, duplicate or rejected). Anything else —
connection errors, timeouts, 503, 429 — leaves it spooled for the next
:meth:`ZhibaoClient.drain`. Resending is safe: intake answers "duplicate"
for an event it already stored (same ``source`` + ``id``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from zhibao_client.spool import Spool, event_key

BATCH_TYPE = "application/cloudevents-batch+json"
DONE = {"accepted", "duplicate", "rejected"}


@dataclass
class SubmitReport:
    """What happened to the events of a submit or drain."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[dict[str, Any], list[dict[str, str]]]] = field(default_factory=list)
    spooled: int = 0
    retry_after_s: float | None = None

    @property
    def delivered(self) -> int:
        """Events intake now holds (new or already known)."""
        return self.accepted + self.duplicates


class ZhibaoClient:
    """A client for community systems (gate devices, apps, spreadsheets)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        spool_path: Path,
        *,
        batch_size: int = 100,
        timeout_s: float = 10.0,
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/events"
        self._headers = {"authorization": f"Bearer {token}", "content-type": BATCH_TYPE}
        self._spool = Spool(spool_path)
        self._batch_size = batch_size
        self._http = httpx.Client(timeout=timeout_s)

    def add(self, events: list[dict[str, Any]]) -> None:
        """Spool events durably without sending them yet."""
        self._spool.add(events)

    def submit(self, events: list[dict[str, Any]]) -> SubmitReport:
        """Spool the events, then try to deliver everything spooled."""
        self.add(events)
        return self.drain()

    def drain(self) -> SubmitReport:
        """Send spooled events until the spool is empty or intake cannot take more now."""
        report = SubmitReport()
        while batch := self._spool.oldest(self._batch_size):
            if not self._send(batch, report):
                break
        report.spooled = len(self._spool)
        return report

    def drain_until_empty(self, max_wait_s: float, base_delay_s: float = 0.5) -> SubmitReport:
        """Keep draining with exponential backoff (and jitter) up to ``max_wait_s``."""
        deadline = time.monotonic() + max_wait_s
        total = SubmitReport()
        delay = base_delay_s
        while True:
            report = self.drain()
            total.accepted += report.accepted
            total.duplicates += report.duplicates
            total.rejected += report.rejected
            total.spooled = report.spooled
            if report.spooled == 0 or time.monotonic() >= deadline:
                return total
            wait = report.retry_after_s or delay * (1 + random.random() / 2)
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 60.0)

    def _send(self, batch: list[dict[str, Any]], report: SubmitReport) -> bool:
        keys = [event_key(e) for e in batch]
        try:
            response = self._http.post(self._url, json=batch, headers=self._headers)
        except httpx.HTTPError:
            self._spool.attempted(keys)
            return False
        if response.status_code in (429, 503) or response.status_code >= 500:
            self._spool.attempted(keys)
            retry = response.headers.get("retry-after", "")
            report.retry_after_s = float(retry) if retry.isdigit() else None
            if response.status_code == 503:
                self._settle(batch, response, report)
            return False
        if response.status_code in (202, 207, 403, 422):
            self._settle(batch, response, report)
            return True
        # 400/401/413/415: the whole request is wrong; keep the events, tell the caller.
        raise RuntimeError(f"intake refused the request: {response.status_code} {response.text}")

    def _settle(
        self, batch: list[dict[str, Any]], response: httpx.Response, report: SubmitReport
    ) -> None:
        done = []
        for result in response.json().get("results", []):
            status = result.get("status")
            if status not in DONE:
                continue
            event = batch[result["index"]]
            done.append(event_key(event))
            if status == "accepted":
                report.accepted += 1
            elif status == "duplicate":
                report.duplicates += 1
            else:
                report.rejected.append((event, result.get("errors", [])))
        self._spool.remove(done)

    def close(self) -> None:
        """Close the HTTP client and the spool."""
        self._http.close()
        self._spool.close()
