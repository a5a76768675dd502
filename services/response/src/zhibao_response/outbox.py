"""Publishes the task messages the store wrote, oldest first, then forgets them.

Each carries its own ``Nats-Msg-Id``: a batch resent after a crash (published, not yet
forgotten) is dropped by the stream's duplicate window.

Messages go out in waves awaited in turn, each holding at most one message of a task, a
point or a unit's level: a task's later message is sent only once its earlier one is
stored. (Sent all together, a failed ``issued`` resent after its stored ``changed`` would
follow it on the stream, and intake, which keeps a task's last message, would reopen it.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

import structlog
from sqlalchemy import Row

from zhibao_response.metrics import OUTBOX_PENDING
from zhibao_response.store import TaskStore

log = structlog.get_logger(__name__)
#: Publishes one message (subject, body, message id) and returns once the stream stored it.
Publish = Callable[[str, bytes, str], Awaitable[None]]
#: Seconds between looks at the outbox when nobody wakes the loop.
IDLE_S = 1.0
#: Messages awaiting the stream's acknowledgement at once.
_IN_FLIGHT = 100
#: Seconds an answer waits for its messages to reach the stream. Longer means the bus
#: is down: the answer goes out anyway (the messages follow when it is back), and intake
#: asks a result's sender to retry while it cannot read the stream.
ANNOUNCE_WAIT_S = 2.0


class OutboxPublisher:
    """At-least-once delivery of the outbox into the tasks stream (oldest first)."""

    def __init__(self, store: TaskStore, publish: Publish, batch: int = 500) -> None:
        self._store = store
        self._publish = publish
        self._batch = batch
        self._wake = asyncio.Event()
        self._started = 0  # passes of the loop begun,
        self._finished = 0  # and the last one that published everything it found
        self._passes = asyncio.Condition()

    def wake(self) -> None:
        """Something was written: publish it now, not at the next idle tick."""
        self._wake.set()

    async def announced(self, timeout_s: float = ANNOUNCE_WAIT_S) -> bool:
        """Wake the loop and wait until everything written before this call is on the
        stream (a pass begun after the call has finished); False after ``timeout_s``.

        An answer that says a task exists is sent after this: a community's result sent
        right after it must find the task on the stream intake reads.
        """
        target = self._started + 1  # a pass running now may have missed the new rows
        self.wake()
        try:
            async with asyncio.timeout(timeout_s), self._passes:
                await self._passes.wait_for(lambda: self._finished >= target)
        except TimeoutError:
            log.warning("task_messages_not_announced_yet", waited_s=timeout_s)
            return False
        return True

    async def flush(self) -> int:
        """Publish everything pending; how many messages went out."""
        sent = 0
        waiting = await self._store.pending_count()
        OUTBOX_PENDING.set(waiting)  # stays while the bus refuses them
        while rows := await self._store.pending_messages(self._batch):
            for wave in waves(rows, _IN_FLIGHT):
                await asyncio.gather(*(self._publish(r.subject, r.body, r.msg_id) for r in wave))
            await self._store.published(rows)
            sent += len(rows)
            waiting = max(0, waiting - len(rows))
            OUTBOX_PENDING.set(waiting)
        OUTBOX_PENDING.set(0)
        return sent

    async def run(self) -> None:
        """Flush, then wait to be woken (or the idle tick); failures are retried."""
        while True:
            self._wake.clear()
            self._started += 1
            number = self._started
            try:
                await self.flush()
            except Exception as exc:
                log.warning("task_messages_not_published", error=type(exc).__name__)
            else:
                async with self._passes:
                    self._finished = number
                    self._passes.notify_all()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_S)


def waves(rows: Sequence[Row[Any]], most: int) -> list[list[Row[Any]]]:
    """``rows`` in order as runs of at most ``most``, none holding two messages about one
    thing (a task, a point, a unit's level: :func:`_about`)."""
    out: list[list[Row[Any]]] = []
    about: set[str] = set()
    for row in rows:
        key = _about(row)
        if not out or len(out[-1]) == most or key in about:
            out.append([])
            about = set()
        out[-1].append(row)
        about.add(key)
    return out


def _about(row: Row[Any]) -> str:
    """What a message is about: its task or point, else its subject (a unit's level)."""
    body = json.loads(row.body)
    return str(body.get("task") or body.get("point") or row.subject)
