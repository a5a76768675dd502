"""The alerts service's consumer of the response service's task messages.

A durable pull consumer of its own on ``ZHIBAO_TASKS`` (the events consumer and its
per-event cost are untouched), reading only ``overdue`` and ``changed`` messages of the
service's districts (``ZHIBAO_ALERTS_DISTRICTS``), in batches: one transaction each.
Nack on error: a batch is acknowledged only after its transaction committed, and a
batch whose handler failed is nak'd with a delay and comes back whole (the records make
applying it twice harmless). A message that is not a task message can never become one:
it is parked on the dead-letter stream and terminated instead of coming back for ever.

Why nats-py's pull subscription rather than a FastStream subscriber: FastStream's batch
pull loop lets nats-py's plain ``TimeoutError`` (a partial batch whose deadline ran out)
escape, dropping the messages already fetched until their ack wait expires (30 s late
alerts); the events consumer (``zhibao_shared.consumer``) reads the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from zhibao_alerts.domain.redaction import mask_text
from zhibao_shared.consumer import DEAD_REASON_HEADER, ORIGINAL_SUBJECT_HEADER
from zhibao_shared.subjects import DEAD_LETTER_STREAM, TASKS_STREAM, dead_letter_subject
from zhibao_shared.task_events import TaskEvent, TaskMessage

log = structlog.get_logger(__name__)

#: The task events the alerts service reads (issues and acceptances are not its concern).
READ_EVENTS = (TaskEvent.OVERDUE, TaskEvent.CHANGED)

ApplyTasks = Callable[[Sequence[TaskMessage]], Awaitable[None]]


def task_filters(districts: Sequence[str]) -> tuple[str, ...]:
    """Subject filters: the overdue and changed messages of these districts (all: none)."""
    return tuple(
        f"zhibao.tasks.{district}.*.{event.value}"
        for district in (districts or ("*",))
        for event in READ_EVENTS
    )


@dataclass(frozen=True)
class TaskConsumerSpec:
    """How the alerts service consumes the tasks stream."""

    durable: str
    filter_subjects: tuple[str, ...]
    batch_size: int = 200
    #: How long one fetch waits to fill a batch: an idle consumer asks this often.
    fetch_timeout_s: float = 1.0
    ack_wait_s: float = 30.0
    nak_delay_s: float = 1.0

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer: every message kept, explicit acks, redelivered after
        ``ack_wait_s`` when an instance died holding it."""
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_ack_pending=max(1000, self.batch_size * 4),
            filter_subjects=list(self.filter_subjects),
        )


class TaskConsumer:
    """Fetches batches of task messages, decodes them and hands them to ``apply``."""

    def __init__(self, js: JetStreamContext, spec: TaskConsumerSpec, apply: ApplyTasks) -> None:
        self.spec = spec
        self._js = js
        self._apply = apply
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Create (or update) the durable consumer and bind to it."""
        await self._js.add_consumer(TASKS_STREAM, self.spec.consumer_config())
        self._subscription = await self._js.pull_subscribe_bind(
            durable=self.spec.durable, stream=TASKS_STREAM
        )
        log.info("task_consumer_started", durable=self.spec.durable)

    async def run(self) -> None:
        """Fetch and apply batches until :meth:`stop`, then unsubscribe."""
        try:
            while not self._stopping.is_set():
                await self.step()
        finally:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                with suppress(nats.errors.Error, OSError, TimeoutError):
                    await subscription.unsubscribe()

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stopping.set()

    async def present(self) -> bool:
        """True while the durable consumer exists on the server."""
        try:
            await self._js.consumer_info(TASKS_STREAM, self.spec.durable, timeout=2.0)
        except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
            return False
        return True

    async def step(self) -> bool:
        """Fetch one batch and apply it; False when nothing was waiting."""
        assert self._subscription is not None, "call start() first"
        try:
            batch = await self._subscription.fetch(
                self.spec.batch_size, timeout=self.spec.fetch_timeout_s
            )
        except (nats.errors.TimeoutError, TimeoutError):
            return False
        except (nats.errors.Error, OSError) as exc:
            log.warning("task_fetch_failed", error=mask_text(repr(exc)))
            await asyncio.sleep(self.spec.nak_delay_s)
            return False
        await self.handle(batch)
        return bool(batch)

    async def handle(self, batch: Sequence[Msg]) -> None:
        """Apply a batch, then ack it; on error nak it with a delay (it comes back)."""
        messages: list[TaskMessage] = []
        kept: list[Msg] = []
        for msg in batch:
            try:
                messages.append(TaskMessage.model_validate_json(msg.data))
                kept.append(msg)
            except ValidationError as exc:
                await self._dead_letter(msg, str(exc)[:500])
        try:
            await self._apply(messages)
        except Exception as exc:
            log.warning("task_messages_failed", error=mask_text(repr(exc)), size=len(kept))
            for msg in kept:
                await msg.nak(delay=self.spec.nak_delay_s)
            return
        for msg in kept:
            await msg.ack()

    async def _dead_letter(self, msg: Msg, detail: str) -> None:
        """Park an undecodable message on the dead-letter stream and terminate it."""
        meta = msg.metadata
        await self._js.publish(
            dead_letter_subject("alerts", msg.subject),
            msg.data,
            headers={
                DEAD_REASON_HEADER: f"undecodable: {detail}".replace("\n", " "),
                ORIGINAL_SUBJECT_HEADER: msg.subject,
                "Nats-Msg-Id": f"{self.spec.durable}:{meta.stream}:{meta.sequence.stream}",
            },
            stream=DEAD_LETTER_STREAM,
        )
        await msg.term()
        log.error("task_message_dead_lettered", subject=msg.subject, sequence=meta.sequence.stream)
