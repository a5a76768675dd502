"""The accountability trail: every submission attributed, in an append-only stream.

Each record says who (token id and name, or an unauthenticated caller's
address), when, over which channel, and per event: id, source, community,
type and outcome. Records carry no personal data. The ZHIBAO_AUDIT stream
refuses deletes and purges; only its age and size limits retire records.

Refusals of callers without a valid token are not recorded one by one (anyone
can cause them): they are counted per window (see
:mod:`zhibao_intake.domain.refusal_tally`) and each window becomes one record
per channel, address, status and reason, with ``count``.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from zhibao_intake.domain.outcome import Status
from zhibao_intake.domain.refusal_tally import ClosedWindow, RefusalKey, RefusalTally
from zhibao_shared.broker import bus_connected, payload_room
from zhibao_shared.resident_id import mask_resident_ids
from zhibao_shared.subjects import AUDIT_STREAM, audit_subject
from zhibao_shared.tokens import Token

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as intake knows."""

    channel: str
    remote: str | None
    token: Token | None


def audit_record(
    caller: Caller,
    results: list[dict[str, Any]] | None,
    *,
    status: int,
    items: list[Any] | None = None,
) -> dict[str, Any]:
    """The audit record of one submission (or of a refusal before admission).

    ``results`` are the per-item answers as sent to the caller (JSON form, in
    submission order) and ``items`` the submitted items they answer.
    """
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "channel": caller.channel,
        "remote": caller.remote,
        "token": caller.token.id if caller.token else None,
        "token_name": caller.token.name if caller.token else None,
        "status": status,
    }
    if results is not None and items is not None:
        record["events"] = [
            _event_line(result, item) for result, item in zip(results, items, strict=True)
        ]
    return record


def tally_records(window: ClosedWindow) -> list[dict[str, Any]]:
    """One audit record per key of a closed window of unauthenticated refusals."""
    start = datetime.fromtimestamp(window.start, UTC)
    end = datetime.fromtimestamp(window.start + window.length, UTC)
    return [
        {
            "at": end.isoformat(),
            "from": start.isoformat(),
            "channel": key.channel,
            "remote": key.remote,
            "token": None,
            "token_name": None,
            "status": key.status,
            "reason": key.reason,
            "count": count,
        }
        for key, count in window.counts.items()
    ]


def _event_line(result: dict[str, Any], item: Any) -> dict[str, Any]:
    line: dict[str, Any] = {k: result[k] for k in ("status", "code") if k in result}
    if result["status"] != Status.REJECTED:
        # Admitted: id and source passed the resident-ID check, subject and type
        # were validated, so there is nothing to mask.
        line |= {k: result[k] for k in ("id", "source")}
        line |= {k: item[k] for k in ("subject", "type")}
        return line
    # A refused event's fields are as submitted: anything shaped like a resident ID
    # (an ID number as event id, or as CloudEvents subject) is masked.
    for key in ("id", "source"):
        if key in result:
            line[key] = mask_resident_ids(result[key])
    if isinstance(item, dict):
        for key in ("subject", "type"):
            if isinstance(item.get(key), str):
                line[key] = mask_resident_ids(item[key])[:64]
    return line


class AuditTrail:
    """Appends audit records to JetStream in small batches (JSON lines, few messages a flush).

    Records are buffered for at most ``flush_interval_s`` (or ``batch_size``
    records) so the trail costs a publish per batch, not per request. Each
    record is encoded once, when appended; a flush packs the lines into
    messages that fit the server's maximum payload (a record of a large batch
    submission is kilobytes). When NATS is down the buffer is kept (up to
    ``max_buffer`` records) and retried; beyond that, and for a record too
    large for any message, records go to the structured log so nothing is
    silently dropped.
    """

    def __init__(
        self,
        broker: NatsBroker,
        timeout_s: float,
        *,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
        max_buffer: int = 50_000,
        refusal_window_s: float = 60.0,
    ) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self._interval_s = flush_interval_s
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: list[bytes] = []
        self._wake = asyncio.Event()
        self._tally = RefusalTally(refusal_window_s)

    def count_refusal(self, caller: Caller, status: int, reason: str) -> None:
        """Count a refusal of a caller without a valid token (recorded per window)."""
        key = RefusalKey(caller.channel, caller.remote, status, reason)
        self._append_window(self._tally.add(key, time.time()))

    def _append_window(self, window: ClosedWindow | None) -> None:
        for record in tally_records(window) if window is not None else []:
            self.append(record)

    def append(self, record: dict[str, Any]) -> None:
        """Queue one record (never blocks or raises: auditing must not fail a submission)."""
        if len(self._buffer) >= self._max_buffer:
            log.warning("audit_buffer_full", **record)
            return
        self._buffer.append(json.dumps(record, ensure_ascii=False).encode())
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    async def run(self) -> None:
        """Flush periodically until cancelled; then flush what is left."""
        try:
            while True:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
                self._wake.clear()
                self._append_window(self._tally.close(time.time()))
                await self.flush()
        finally:
            self._append_window(self._tally.close(None))
            await self.flush()

    async def flush(self) -> bool:
        """Publish buffered records as JSON-lines messages; False if some stay buffered."""
        if not self._buffer:
            return True
        if not bus_connected(self._broker):
            return False
        lines, self._buffer = self._buffer, []
        for start, end in _messages(lines, payload_room(self._broker)):
            if end - start == 1 and len(lines[start]) > payload_room(self._broker):
                log.warning("audit_record_too_large", record=lines[start].decode())
                continue
            try:
                await self._publish(b"\n".join(lines[start:end]))
            except (NatsError, TimeoutError, OSError) as exc:
                log.warning("audit_publish_failed", error=str(exc), records=len(lines) - start)
                self._buffer = lines[start:] + self._buffer
                return False
        return True

    async def _publish(self, payload: bytes) -> None:
        await self._broker.publish(
            payload,
            audit_subject("intake", "submissions"),
            stream=AUDIT_STREAM,
            timeout=self._timeout_s,
        )


def _messages(lines: list[bytes], room: int) -> list[tuple[int, int]]:
    """Consecutive runs of lines (start, end) whose JSON-lines message fits ``room`` bytes."""
    runs: list[tuple[int, int]] = []
    start, size = 0, 0
    for end, line in enumerate(lines):
        if end > start and size + 1 + len(line) > room:
            runs.append((start, end))
            start, size = end, 0
        size += len(line) + (1 if end > start else 0)
    runs.append((start, len(lines)))
    return runs
