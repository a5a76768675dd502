"""The task messages' consumer: the response service's ``zhibao.tasks.>`` into task rollups.

A FastStream batch pull subscriber on its own durable consumer of the
``ZHIBAO_TASKS`` stream (``<ZHIBAO_AGGREGATOR_DURABLE>-tasks``), apart from the
events consumer whose hot path it leaves alone. Each fetched batch is applied
in one transaction (idempotent: :mod:`zhibao_aggregator.storage.task_writer`)
and acknowledged after the commit; a failing batch is nak'd and comes back
(``AckPolicy.NACK_ON_ERROR``). A message that is not a task message is logged
and skipped, never retried for ever.

With ``ZHIBAO_AGGREGATOR_DISTRICTS`` the consumer reads those districts' tasks
only (``zhibao.tasks.<district>.>``), like the events consumer.
"""

# No `from __future__ import annotations`: FastStream resolves the handler's annotations.

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.changes import Changed
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.metrics import TASK_MESSAGES_APPLIED, TASK_MESSAGES_SKIPPED
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.task_writer import TasksApplied, apply_task_messages
from zhibao_shared.bus_access import inbox_prefix, tasks_durable
from zhibao_shared.subjects import TASKS_ALL, TASKS_STREAM, task_event_filters
from zhibao_shared.task_events import TaskEvent, TaskMessage

log = structlog.get_logger(__name__)

#: How long a batch is collected before it is applied: the latency a task change adds, and
#: an idle consumer's one request per interval (the idle CPU the benchmark measures).
BATCH_WAIT_S = 1.0


def durable(settings: AggregatorSettings) -> str:
    """The task consumer's durable name (derived from the events consumer's)."""
    return tasks_durable(settings.aggregator_durable)


def filter_subjects(settings: AggregatorSettings) -> list[str]:
    """The districts' task subjects (all tasks when no districts are configured)."""
    return task_event_filters(settings.aggregator_districts, TaskEvent)


def consumer_config(settings: AggregatorSettings) -> ConsumerConfig:
    """The durable consumer: from the stream's start, explicit acks, redelivered after
    ``ZHIBAO_AGGREGATOR_ACK_WAIT_S``."""
    return ConsumerConfig(
        durable_name=durable(settings),
        name=durable(settings),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=JsAckPolicy.EXPLICIT,
        ack_wait=settings.aggregator_ack_wait_s,
        max_ack_pending=max(1000, settings.aggregator_batch_size * 4),
        filter_subjects=filter_subjects(settings),
    )


def parse(bodies: Sequence[object]) -> list[TaskMessage]:
    """The valid task messages of a batch (others are logged and counted, then dropped)."""
    messages: list[TaskMessage] = []
    for body in bodies:
        try:
            if isinstance(body, bytes | str):
                messages.append(TaskMessage.model_validate_json(body))
            else:
                messages.append(TaskMessage.model_validate(body))
        except ValidationError as exc:
            TASK_MESSAGES_SKIPPED.inc()
            log.warning("task_message_skipped", errors=exc.error_count())
    return messages


class ApplyTaskMessages:
    """Applies a batch of task message bodies in one transaction, then announces changes."""

    def __init__(self, engine: AsyncEngine, calendar: Calendar, on_committed: Changed) -> None:
        self._engine = engine
        self._calendar = calendar
        self._on_committed = on_committed

    async def __call__(self, bodies: Sequence[object]) -> TasksApplied:
        """Apply and commit (raises, so the batch is nak'd, if anything fails)."""
        messages = parse(bodies)
        today = self._calendar.today(datetime.now(UTC))
        started = time.perf_counter()
        async with self._engine.begin() as conn:
            result = await apply_task_messages(conn, messages, self._calendar, today)
        TASK_MESSAGES_APPLIED.inc(result.applied)
        log.debug(
            "task_batch_applied",
            size=len(bodies),
            applied=result.applied,
            duplicates=result.duplicates,
            seconds=round(time.perf_counter() - started, 4),
        )
        self._on_committed(result.changed)
        return result


#: What the subscriber calls with each batch's message bodies (an :class:`ApplyTaskMessages`).
Apply = Callable[[Sequence[object]], Awaitable[object]]


def subscribe(broker: NatsBroker, settings: AggregatorSettings, apply: Apply) -> Any:
    """Register the FastStream subscriber on ``broker`` (start it once the stream exists)."""
    subscriber = broker.subscriber(
        TASKS_ALL,
        stream=JStream(TASKS_STREAM, declare=False),
        durable=durable(settings),
        config=consumer_config(settings),
        pull_sub=PullSub(settings.aggregator_batch_size, timeout=BATCH_WAIT_S, batch=True),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        inbox_prefix=f"{inbox_prefix('aggregator')}.".encode(),
        title="aggregator-tasks",
        description="Task messages into the task rollups",
    )

    @subscriber
    async def on_tasks(body: list[Any]) -> None:
        await apply(body)

    return subscriber


async def start(subscriber: Any) -> None:
    """Start the subscriber (after its stream exists), its fetches made safe to time out."""
    await subscriber.start()
    subscription = subscriber.subscription
    if subscription is not None and not getattr(subscription, "_zhibao_wrapped", False):
        subscription.fetch = _timing_out_as_nats(subscription.fetch)
        subscription._zhibao_wrapped = True


def _timing_out_as_nats(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``fetch`` raising nats' ``TimeoutError`` where it raised a bare one.

    nats-py's fetch of a batch may time out with a bare ``asyncio.TimeoutError``
    (nats-py 2.16) where FastStream's batch pull loop catches only
    ``nats.errors.TimeoutError`` (faststream 0.7.8): the loop then dies and the
    messages it had fetched come back only after the ack wait, seconds later. A
    partial batch is the usual case (a few task changes at a time), so each would
    be late. As nats' error, the loop handles the batch it has.
    """

    async def fetching(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    return fetching


async def drop_consumer(js: JetStreamContext, settings: AggregatorSettings) -> None:
    """Delete the task consumer (a rebuild recreates it at the stream's start)."""
    try:
        await js.delete_consumer(TASKS_STREAM, durable(settings))
    except nats.js.errors.NotFoundError:
        return


async def replay(
    js: JetStreamContext, settings: AggregatorSettings, apply: ApplyTaskMessages
) -> int:
    """Apply the whole task stream through a fresh durable consumer; messages replayed.

    The service then continues on the same consumer from where the replay ended.
    Without a tasks stream there is nothing to replay.
    """
    try:
        await js.stream_info(TASKS_STREAM)
    except nats.js.errors.NotFoundError:
        return 0
    await js.add_consumer(TASKS_STREAM, consumer_config(settings))
    subscription = await js.pull_subscribe_bind(durable=durable(settings), stream=TASKS_STREAM)
    replayed = 0
    try:
        while await _pending(js, settings) > 0:
            try:
                messages = await subscription.fetch(settings.aggregator_batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                await asyncio.sleep(0)
                continue
            await apply([m.data for m in messages])
            for message in messages:
                await message.ack_sync()
            replayed += len(messages)
    finally:
        await subscription.unsubscribe()
    return replayed


async def reading(js: JetStreamContext, settings: AggregatorSettings) -> bool:
    """False while the tasks stream exists without this consumer (an operator deleted it,
    or it is not started yet); True when it reads, or when there is no tasks stream at
    all (a deployment without the response service has no tasks to read)."""
    try:
        await js.consumer_info(TASKS_STREAM, durable(settings), timeout=2.0)
        return True
    except nats.js.errors.NotFoundError:
        pass
    except (nats.errors.Error, TimeoutError):
        return False
    try:
        await js.stream_info(TASKS_STREAM)
    except nats.js.errors.NotFoundError:
        return True
    except (nats.errors.Error, TimeoutError):
        return False
    return False


async def _pending(js: JetStreamContext, settings: AggregatorSettings) -> int:
    info = await js.consumer_info(TASKS_STREAM, durable(settings))
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
