"""Submitting events to intake with a durable spool: delivered exactly once in effect.

Every event is spooled (fsync'd) before it is sent and removed only after
intake answered for it: ``accepted`` or ``duplicate`` (done) or ``rejected``
(returned to the caller with intake's field errors, never retried). Anything
else — connection errors, timeouts, 503, 429, other 5xx — leaves it spooled;
the client then backs off exponentially with jitter (never shorter than
``Retry-After``), except after a rate limit (429), whose ``Retry-After`` says
exactly when the token may send again and is waited out as given; a drain that
got answers before it was refused starts the backoff afresh.
:meth:`ZhibaoClient.drain` sends it later, also from a new process using the
same spool file. Resending is safe: intake answers
``duplicate`` for an event it already stored (same ``source`` + ``id``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from zhibao_client.spool import Spool, event_key
from zhibao_shared.events import CONTENT_TYPE_BATCH

_RETRYABLE = {429, 503}
_SPLITTABLE = {400, 413}


@dataclass(frozen=True)
class Rejection:
    """An event intake refused for good, with its reason code and field errors."""

    event: Any
    code: str
    errors: list[dict[str, str]]

    def describe(self) -> str:
        """One line: the event's id and what is wrong (field: message; …)."""
        event_id = self.event.get("id") if isinstance(self.event, dict) else None
        reasons = "; ".join(
            f"{e.get('field') or '(event)'}: {e.get('message')}" for e in self.errors
        )
        return f"{event_id or '(no id)'} [{self.code}] {reasons}"


@dataclass
class SubmitReport:
    """What happened to the events of a submit or drain."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    spooled: int = 0
    retry_after_s: float | None = None
    #: why intake held the spooled events back (a 429's detail: the token's rate limit or
    #: its storage budget); None when it could not be reached or was unavailable
    held_back: str | None = None

    @property
    def delivered(self) -> int:
        """Events intake now holds (new or already known)."""
        return self.accepted + self.duplicates

    def add(self, other: SubmitReport) -> None:
        """Fold a later report into this one (``spooled`` is the later count)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.spooled = other.spooled
        self.retry_after_s = other.retry_after_s
        self.held_back = other.held_back

    def summary(self) -> str:
        """The one-line summary the commands print."""
        return (
            f"accepted {self.accepted}, duplicates {self.duplicates}, "
            f"rejected {len(self.rejected)}, still spooled {self.spooled}"
        )


class RequestRefused(RuntimeError):
    """Intake refused the whole request (e.g. 401: unknown token); events stay spooled."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"intake refused the request ({status}): {detail}")
        self.status = status


class _Unavailable(Exception):
    """Intake could not take the batch now (spool it, back off)."""

    def __init__(self, retry_after_s: float | None = None, *, held_back: str | None = None) -> None:
        self.retry_after_s = retry_after_s
        #: a 429's detail: the token's own limit, not an outage
        self.held_back = held_back

    @property
    def rate_limited(self) -> bool:
        """Intake held the batch back for the token's limit (429)."""
        return self.held_back is not None


class ZhibaoClient:
    """A client for community systems (gate devices, apps, spreadsheets).

    ``base_url`` is intake's root (``http://127.0.0.1:8101``); ``token`` a
    ``report`` token; ``spool_path`` the SQLite file where events wait.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        spool_path: Path | str,
        *,
        batch_size: int = 100,
        timeout_s: float = 10.0,
        base_delay_s: float = 0.5,
        max_delay_s: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/events"
        self._headers = {"authorization": f"Bearer {token}", "content-type": CONTENT_TYPE_BATCH}
        self._spool = Spool(Path(spool_path))
        self._batch_size = batch_size
        self._http = httpx.Client(timeout=timeout_s)
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._random = random.Random(seed)
        self._failures = 0
        self._not_before = 0.0
        #: why intake held the spool back last (a 429's detail), until it answers again
        self._held_back: str | None = None

    @property
    def pending(self) -> int:
        """Events in the spool, not yet answered for."""
        return len(self._spool)

    @property
    def backoff_s(self) -> float:
        """Seconds until the next automatic attempt (0 when intake answered last time)."""
        return max(0.0, self._not_before - time.monotonic())

    def add(self, events: list[Any]) -> int:
        """Spool events durably without sending them yet; returns how many were new."""
        return self._spool.add(events)

    def submit(self, events: list[Any]) -> SubmitReport:
        """Spool the events, then deliver what is spooled unless backing off after a failure."""
        self.add(events)
        if self.backoff_s > 0:
            return SubmitReport(
                spooled=self.pending, retry_after_s=self.backoff_s, held_back=self._held_back
            )
        return self.drain()

    def drain(self) -> SubmitReport:
        """Send spooled events now, until the spool is empty or intake cannot take more."""
        report = SubmitReport()
        started_with = self.pending
        try:
            while batch := self._spool.oldest(self._batch_size):
                before = self.pending
                self._send(batch, report)
                if self.pending >= before:  # intake answered for none of them
                    raise _Unavailable
        except _Unavailable as unavailable:
            if self.pending < started_with:  # intake was answering: not a run of failures
                self._failures = 0
            self._back_off(unavailable)
            report.retry_after_s = self.backoff_s
            report.held_back = self._held_back = unavailable.held_back
        else:
            self._failures = 0
            self._not_before = 0.0
            self._held_back = None
        report.spooled = self.pending
        return report

    def drain_until_empty(self, max_wait_s: float) -> SubmitReport:
        """Keep draining, waiting out the backoff between attempts, for up to ``max_wait_s``."""
        deadline = time.monotonic() + max_wait_s
        total = SubmitReport()
        while True:
            total.add(self.drain())
            remaining = deadline - time.monotonic()
            if total.spooled == 0 or remaining <= 0:
                return total
            time.sleep(min(self.backoff_s, remaining))

    def _back_off(self, unavailable: _Unavailable) -> None:
        retry_after_s = unavailable.retry_after_s
        if unavailable.rate_limited and retry_after_s is not None:
            # the token's bucket refills on schedule: escalating would only idle the client
            self._not_before = time.monotonic() + retry_after_s
            return
        self._failures += 1
        ceiling = min(self._max_delay_s, self._base_delay_s * 2 ** (self._failures - 1))
        delay = ceiling * (0.5 + self._random.random() / 2)  # jitter: spread the retries
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self._not_before = time.monotonic() + delay

    def _send(self, batch: list[Any], report: SubmitReport) -> None:
        keys = [event_key(e) for e in batch]
        try:
            response = self._http.post(self._url, json=batch, headers=self._headers)
        except httpx.HTTPError:
            self._spool.attempted(keys)
            raise _Unavailable from None
        status = response.status_code
        if status in (202, 207, 403, 422):
            self._settle(batch, response, report)
        elif status in _RETRYABLE or status >= 500:
            self._spool.attempted(keys)
            if status == 503:
                self._settle(batch, response, report)  # some may be stored already
            held_back = _detail(response) if status == 429 else None
            raise _Unavailable(_retry_after(response), held_back=held_back)
        elif status in _SPLITTABLE:
            self._split(batch, response, report)
        else:
            raise RequestRefused(status, _detail(response))

    def _split(self, batch: list[Any], response: httpx.Response, report: SubmitReport) -> None:
        """A 400/413 for a batch: find the culprit by halves; a lone culprit is rejected."""
        if len(batch) == 1:
            code = "too_large" if response.status_code == 413 else "bad_request"
            rejection = Rejection(batch[0], code, [{"field": "", "message": _detail(response)}])
            report.rejected.append(rejection)
            self._spool.remove([event_key(batch[0])])
            return
        half = len(batch) // 2
        self._send(batch[:half], report)
        self._send(batch[half:], report)

    def _settle(self, batch: list[Any], response: httpx.Response, report: SubmitReport) -> None:
        done = []
        for result in _results(response):
            status, index = result.get("status"), result.get("index")
            if not isinstance(index, int) or not 0 <= index < len(batch):
                continue
            event = batch[index]
            if status == "accepted":
                report.accepted += 1
            elif status == "duplicate":
                report.duplicates += 1
            elif status == "rejected":
                errors = result.get("errors") or []
                report.rejected.append(Rejection(event, str(result.get("code", "")), errors))
            else:
                continue
            done.append(event_key(event))
        self._spool.remove(done)

    def close(self) -> None:
        """Close the HTTP client and the spool."""
        self._http.close()
        self._spool.close()

    def __enter__(self) -> ZhibaoClient:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


def _results(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    results = body.get("results") if isinstance(body, dict) else None
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if given."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:200]
    return str(body)[:200]
