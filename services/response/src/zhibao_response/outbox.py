"""Publishes the task messages the store wrote, oldest first, then forgets them.

Each carries its own ``Nats-Msg-Id``: a batch resent after a crash (published, not yet
forgotten) is dropped by the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress

import structlog

from zhibao_response.metrics import OUTBOX_PENDING
from zhibao_response.store import TaskStore

log = structlog.get_logger(__name__)
#: Publishes one message (subject, body, message id) and returns once the stream stored it.
Publish = Callable[[str, bytes, str], Awaitable[None]]
#: Seconds between looks at the outbox when nobody wakes the loop.
IDLE_S = 1.0
#: Messages awaiting the stream's acknowledgement at once.
_IN_FLIGHT = 100


class OutboxPublisher:
    """At-least-once delivery of the outbox into the tasks stream (oldest first)."""

    def __init__(self, store: TaskStore, publish: Publish, batch: int = 500) -> None:
        self._store = store
        self._publish = publish
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was written: publish it now, not at the next idle tick."""
        self._wake.set()

    async def flush(self) -> int:
        """Publish everything pending; how many messages went out."""
        sent = 0
        while rows := await self._store.pending_messages(self._batch):
            OUTBOX_PENDING.set(len(rows))
            for start in range(0, len(rows), _IN_FLIGHT):
                chunk = rows[start : start + _IN_FLIGHT]
                await asyncio.gather(*(self._publish(r.subject, r.body, r.msg_id) for r in chunk))
            await self._store.published(row.id for row in rows)
            sent += len(rows)
        OUTBOX_PENDING.set(0)
        return sent

    async def run(self) -> None:
        """Flush, then wait to be woken (or the idle tick); failures are retried."""
        while True:
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("task_messages_not_published", error=type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_S)
