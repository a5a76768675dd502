"""The accountability trail: every service appends its records to one append-only stream.

Records are JSON lines in stream ZHIBAO_AUDIT, on ``zhibao.audit.<service>.<group>``
(intake's submissions on ``zhibao.audit.intake.submissions``; an action such as
``alert.acknowledged`` of the alerts service on ``zhibao.audit.alerts.alerts``: the
action's first word in the plural). The
stream refuses deletes and purges; only its age and size limits retire records.

An *action record* says who did what to which unit, once the action is done::

    {"at", "service", "action", "token", "token_name", "person", "unit", "target",
     "detail"}

``action`` is past tense (``alert.acknowledged``, ``task.issued``, ``audit.read``),
``unit`` the 12-digit (or shorter) code the action concerns, ``target`` the id of
the alert, task, token or silence, ``detail`` a short dict without personal data.
Build one with :func:`action_record`, or append it in one call with
:meth:`AuditTrail.record`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from zhibao_shared.broker import bus_connected, payload_room
from zhibao_shared.subjects import AUDIT_STREAM, audit_subject
from zhibao_shared.tokens import Token

log = structlog.get_logger(__name__)

#: How a record is written, built once: ``json.dumps`` with these options builds an encoder
#: per call, a good part of the cost of a single event's record.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)

#: The group of records without an ``action`` (intake's submissions and refusal tallies).
SUBMISSIONS = "submissions"


def action_record(
    service: str,
    action: str,
    token: Token | None,
    *,
    unit: str | None,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
    person: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One action record (see the module's docstring for its fields).

    ``person`` is the acting person when known; without it, the token's ``person``
    (a personal token's holder) is taken if tokens carry one.
    """
    acting = person if person is not None else getattr(token, "person", None)
    return {
        "at": (at or datetime.now(UTC)).isoformat(),
        "service": service,
        "action": action,
        "token": token.id if token else None,
        "token_name": token.name if token else None,
        "person": acting if isinstance(acting, str) else None,
        "unit": unit,
        "target": target,
        "detail": dict(detail or {}),
    }


def group_of(record: Mapping[str, Any]) -> str:
    """The subject's last token for a record: its action's first word in the plural
    (``alert.acknowledged`` -> ``alerts``), else ``submissions``."""
    action = record.get("action")
    if isinstance(action, str) and action:
        return f"{action.partition('.')[0]}s"
    return SUBMISSIONS


class AuditTrail:
    """Appends audit records to JetStream in small batches (JSON lines, few messages a flush).

    Records are buffered for at most ``flush_interval_s`` (or ``batch_size``
    records) so the trail costs a publish per batch, not per request. Each
    record is encoded once, when appended; a flush packs consecutive lines of one
    subject into messages that fit the server's maximum payload. When NATS is down
    the buffer is kept (up to ``max_buffer`` records) and retried; beyond that, and
    for a record too large for any message, records go to the structured log so
    nothing is silently dropped. Appending never blocks or raises: auditing must
    not fail the action it records.

    A message is resent as it was first packed, with the same ``Nats-Msg-Id``: a
    publish whose acknowledgement timed out (NATS stalled) may have been stored, and
    the stream's duplicate window then drops the second copy, so a record is never in
    the trail twice (a copy counted twice in the data-quality scorecard's refusals).
    """

    def __init__(
        self,
        broker: NatsBroker,
        timeout_s: float,
        service: str,
        *,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
        max_buffer: int = 50_000,
    ) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self.service = service
        self._interval_s = flush_interval_s
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: list[tuple[str, bytes]] = []
        #: messages packed but not yet acknowledged, oldest first: resent as they are
        self._unsent: list[_Message] = []
        self._unsent_records = 0
        self._wake = asyncio.Event()

    def record(
        self,
        action: str,
        token: Token | None,
        *,
        unit: str | None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        person: str | None = None,
    ) -> None:
        """Append the action record of an action this service just did."""
        self.append(
            action_record(
                self.service,
                action,
                token,
                unit=unit,
                target=target,
                detail=detail,
                person=person,
            )
        )

    def append(self, record: dict[str, Any]) -> int:
        """Queue one record on its group's subject (to the log instead when ``max_buffer``
        records wait already, packed or not); returns the bytes queued (0: logged)."""
        if len(self._buffer) + self._unsent_records >= self._max_buffer:
            log.warning("audit_buffer_full", **record)
            return 0
        line = _ENCODER.encode(record).encode()
        self._buffer.append((audit_subject(self.service, group_of(record)), line))
        if len(self._buffer) >= self._batch_size:
            self._wake.set()
        return len(line)

    def before_flush(self, now: float | None) -> None:
        """Called before each periodic flush (``now`` is None for the last one): a
        subclass appends what it aggregates (intake's refusal tallies)."""

    async def run(self) -> None:
        """Flush periodically until cancelled; then flush what is left."""
        try:
            while True:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)
                self._wake.clear()
                self.before_flush(time.time())
                await self.flush()
        finally:
            self.before_flush(None)
            try:
                await self.flush()
            finally:  # the bus is gone, or the stop did not wait: the log keeps them
                unsent = [line for m in self._unsent for line in m.payload.split(b"\n")]
                for line in unsent + [line for _, line in self._buffer]:
                    log.warning("audit_record_not_published", record=line.decode())
                self._unsent, self._buffer, self._unsent_records = [], [], 0

    async def flush(self) -> bool:
        """Publish buffered records as JSON-lines messages; False if some stay buffered."""
        if not self._buffer and not self._unsent:
            return True
        if not bus_connected(self._broker):
            return False
        self._unsent += self._packed(self._buffer)
        self._unsent_records = sum(m.records for m in self._unsent)
        self._buffer = []
        while self._unsent:
            message = self._unsent[0]
            try:
                await self._publish(message)
            except (NatsError, TimeoutError, OSError) as exc:
                log.warning("audit_publish_failed", error=str(exc), records=self._unsent_records)
                return False
            self._unsent.pop(0)
            self._unsent_records -= message.records
        return True

    def _packed(self, lines: list[tuple[str, bytes]]) -> list[_Message]:
        """``lines`` as messages, each with the id it keeps when resent."""
        room = payload_room(self._broker)
        packed = []
        for start, end in _messages(lines, room):
            if end - start == 1 and len(lines[start][1]) > room:
                log.warning("audit_record_too_large", record=lines[start][1].decode())
                continue
            payload = b"\n".join(line for _, line in lines[start:end])
            packed.append(_Message(lines[start][0], payload, uuid.uuid4().hex, end - start))
        return packed

    async def _publish(self, message: _Message) -> None:
        await self._broker.publish(
            message.payload,
            message.subject,
            stream=AUDIT_STREAM,
            timeout=self._timeout_s,
            headers={"Nats-Msg-Id": message.msg_id},
        )


@dataclass(frozen=True)
class _Message:
    """One JSON-lines message of records of one subject."""

    subject: str
    payload: bytes
    msg_id: str
    records: int


def _messages(lines: list[tuple[str, bytes]], room: int) -> list[tuple[int, int]]:
    """Consecutive runs of lines (start, end) of one subject whose JSON-lines message fits
    ``room`` bytes."""
    runs: list[tuple[int, int]] = []
    start, size = 0, 0
    for end, (subject, line) in enumerate(lines):
        if end > start and (size + 1 + len(line) > room or subject != lines[start][0]):
            runs.append((start, end))
            start, size = end, 0
        size += len(line) + (1 if end > start else 0)
    if lines:
        runs.append((start, len(lines)))
    return runs
