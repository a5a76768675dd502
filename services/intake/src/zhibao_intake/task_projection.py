"""Intake's projection of the tasks stream: which tasks exist, where they are, if open.

Each intake process replays ``ZHIBAO_TASKS`` (the response service's
``zhibao.tasks.<district>.<unit>.{issued,changed,overdue}`` messages) through an
ordered, ephemeral consumer into a compact in-memory map, and follows it from then
on: task id → current unit, kind, open or closed, whether it requires a visit and
the person's pseudonym. Nothing is stored: a restart replays the stream (90 days).

The process is ready once it has applied everything the stream held when it
subscribed. A result for a task the projection does not know makes intake ask the
stream for its current last sequence and wait (briefly) until the projection has
reached it: a task issued a moment ago is then found, and a task that is still
unknown afterwards was never issued.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from zhibao_intake.domain.task_results import KnownTask
from zhibao_shared.subjects import TASKS_ALL, TASKS_STREAM, is_task_event
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState

log = structlog.get_logger(__name__)

#: A task is open in these states (a transferred task is re-issued to its new unit).
_OPEN = frozenset({TaskState.ISSUED, TaskState.ACCEPTED, TaskState.TRANSFERRED})
#: How often a waiting submission looks whether the projection has caught up.
_POLL_S = 0.005


class TaskProjection:
    """The tasks the stream announced, kept current by an ordered consumer."""

    def __init__(self) -> None:
        self._tasks: dict[str, KnownTask] = {}
        self._applied: set[str] = set()
        self._sequence = 0
        self._ready_at: int | None = None
        self._js: JetStreamContext | None = None
        self._subscription: JetStreamContext.PushSubscription | None = None

    def known(self, task: str) -> KnownTask | None:
        """The task's entry, or None when the stream has not announced it (yet)."""
        return self._tasks.get(task)

    def applied(self, result: str) -> bool:
        """True when a task message said the result of this identity made its change."""
        return result in self._applied

    @property
    def ready(self) -> bool:
        """True once what the stream held at subscription time has been applied."""
        return self._ready_at is not None and self._sequence >= self._ready_at

    def __len__(self) -> int:
        return len(self._tasks)

    def apply(self, sequence: int, body: bytes) -> None:
        """Apply one task message (stream order); an unreadable one is skipped."""
        self._sequence = max(self._sequence, sequence)
        try:
            message = TaskMessage.model_validate_json(body)
        except ValidationError:
            log.warning("task_message_unreadable", stream_sequence=sequence)
            return
        self._tasks[message.task] = KnownTask(
            unit=message.unit,
            kind=message.kind,
            open=message.state in _OPEN,
            requires_visit=message.requires_visit,
            pid=message.person.pid if message.person else None,
        )
        if message.result is not None:
            self._applied.add(message.result)

    async def start(self, js: JetStreamContext) -> None:
        """Subscribe from the stream's first message; ready once its current last one is in."""
        if self._subscription is not None:
            return
        self._js = js
        last = await self._last_sequence()
        self._subscription = await js.subscribe(
            TASKS_ALL, stream=TASKS_STREAM, ordered_consumer=True, cb=self._on_message
        )
        self._ready_at = last
        log.info("task_projection_started", replaying=last)

    async def _on_message(self, msg: Msg) -> None:
        sequence = msg.metadata.sequence.stream
        if is_task_event(msg.subject, TaskEvent):
            self.apply(sequence, msg.data)
        else:  # a declared level or an epidemic point: not a task
            self._sequence = max(self._sequence, sequence)

    async def _last_sequence(self) -> int:
        assert self._js is not None
        info = await self._js.stream_info(TASKS_STREAM)
        return int(info.state.last_seq or 0)

    async def catch_up(self, within_s: float) -> bool:
        """Wait until everything the stream holds now is applied; False when it took
        longer than ``within_s`` seconds or the stream could not be asked."""
        if self._js is None or self._ready_at is None:
            return False
        deadline = time.monotonic() + within_s
        try:
            last = await asyncio.wait_for(self._last_sequence(), within_s)
        except Exception as exc:  # the bus is away: the caller answers "retry"
            log.warning("task_projection_catch_up_failed", error=type(exc).__name__)
            return False
        while self._sequence < last:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    async def stop(self) -> None:
        """Drop the subscription (its ephemeral consumer goes away with it)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as exc:
                log.debug("task_projection_unsubscribe_failed", error=type(exc).__name__)
