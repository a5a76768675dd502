"""The alerts service's consumer of the response service's task messages.

A durable pull consumer of its own on ``ZHIBAO_TASKS`` (the events consumer and its
per-event cost are untouched), reading only ``overdue`` and ``changed`` messages of the
service's districts (``ZHIBAO_ALERTS_DISTRICTS``), in batches: one transaction each,
acknowledged after it committed (``AckPolicy.NACK_ON_ERROR``; a failed batch comes back
after a pause). A message that is not a task message can never become one: it is
parked on the dead-letter stream and terminated instead of coming back for ever.
"""

# No `from __future__ import annotations`: FastStream resolves the handler's annotations.

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from faststream import Context
from faststream.exceptions import NackMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg
from nats.js.api import AckPolicy as ServerAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
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
            ack_policy=ServerAckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_ack_pending=max(1000, self.batch_size * 4),
            filter_subjects=list(self.filter_subjects),
        )


async def _undecoded(_message: StreamMessage[Any]) -> None:
    """The handler reads the raw messages itself (a bad one is parked, not retried)."""
    return None


class TaskConsumer:
    """Decodes batches of task messages and hands them to ``apply``."""

    def __init__(self, spec: TaskConsumerSpec, apply: ApplyTasks) -> None:
        self.spec = spec
        self._apply = apply
        self._broker: NatsBroker | None = None

    def subscribe(self, broker: NatsBroker) -> None:
        """Register the subscriber (it starts with the broker, once the stream exists)."""
        self._broker = broker
        subscriber = broker.subscriber(
            stream=JStream(TASKS_STREAM, declare=False),
            durable=self.spec.durable,
            config=self.spec.consumer_config(),
            pull_sub=PullSub(
                batch_size=self.spec.batch_size, timeout=self.spec.fetch_timeout_s, batch=True
            ),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_undecoded,
            title="alerts:tasks",
            description="Overdue and closed tasks: raise and resolve task_overdue alerts",
        )

        @subscriber
        async def on_task_messages(
            message: Annotated[NatsBatchMessage, Context("message")],
        ) -> None:
            await self.handle(message.raw_message)

    async def handle(self, batch: Sequence[Msg]) -> None:
        """Apply a batch; a failure naks it after a pause (it comes back whole)."""
        messages: list[TaskMessage] = []
        for msg in batch:
            try:
                messages.append(TaskMessage.model_validate_json(msg.data))
            except ValidationError as exc:
                await self._dead_letter(msg, str(exc)[:500])
        try:
            await self._apply(messages)
        except Exception as exc:
            log.warning("task_messages_failed", error=mask_text(repr(exc)), size=len(batch))
            raise NackMessage(delay=self.spec.nak_delay_s) from exc

    async def _dead_letter(self, msg: Msg, detail: str) -> None:
        """Park an undecodable message on the dead-letter stream and terminate it."""
        assert self._broker is not None
        js = self._broker.config.broker_config.connection_state.stream
        meta = msg.metadata
        await js.publish(
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
