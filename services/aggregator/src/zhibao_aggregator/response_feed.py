"""The aggregator's second durable consumer: declared levels and epidemic points.

The response service publishes them on its tasks stream
(``zhibao.tasks.<district>.<unit>.level`` and ``.point``,
:mod:`zhibao_shared.response_events`). This consumer is filtered to those two subjects
only (the task messages have consumers of their own) and is named ``<durable>-levels``.

A batch is stored in one transaction and acknowledged after the commit; storing is
idempotent (rows keyed by declaration and point id), so a redelivery changes nothing.
A message that cannot be decoded, or keeps failing, is parked on the dead-letter stream
like an event the events consumer gives up on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.storage import levels, points
from zhibao_shared.consumer import DEAD_REASON_HEADER, ORIGINAL_SUBJECT_HEADER
from zhibao_shared.hierarchy import lineage
from zhibao_shared.response_events import LevelMessage, PointMessage, parse_response_message
from zhibao_shared.subjects import DEAD_LETTER_STREAM, TASKS_STREAM, dead_letter_subject

log = structlog.get_logger(__name__)
Changed = Callable[[frozenset[tuple[str, date]]], None]
Message = LevelMessage | PointMessage


@dataclass(frozen=True)
class FeedSpec:
    """How the aggregator consumes level and point messages."""

    durable: str
    filter_subjects: tuple[str, ...]
    batch_size: int = 200
    #: Levels and points are rare: an idle consumer asks once per this many seconds.
    fetch_timeout_s: float = 0.5
    max_deliver: int = 5
    nak_delay_s: float = 1.0
    ack_wait_s: float = 30.0

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer on the tasks stream, from its first message."""
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=1000,
            filter_subjects=list(self.filter_subjects),
        )


async def store(engine: AsyncEngine, messages: Sequence[Message]) -> None:
    """Store a batch of level and point messages in one transaction."""
    async with engine.begin() as conn:
        await levels.store_levels(conn, [m for m in messages if isinstance(m, LevelMessage)])
        await points.store_points(conn, [m for m in messages if isinstance(m, PointMessage)])


def touched(messages: Sequence[Message], calendar: Calendar) -> frozenset[tuple[str, date]]:
    """The (unit, today) pairs whose rollups the messages change (a point: its ancestors)."""
    today = calendar.today(datetime.now(UTC))
    units: set[str] = set()
    for message in messages:
        if isinstance(message, LevelMessage):
            units.add(message.unit)
        else:
            units |= set(lineage(message.unit))
    return frozenset((unit, today) for unit in units)


@dataclass
class ResponseFeed:
    """A durable pull consumer of level and point messages."""

    js: JetStreamContext
    spec: FeedSpec
    engine: AsyncEngine
    calendar: Calendar
    on_committed: Changed = lambda _changed: None
    _subscription: JetStreamContext.PullSubscription | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Declare the durable consumer (the tasks stream must exist) and bind to it."""
        await self.js.add_consumer(TASKS_STREAM, self.spec.consumer_config())
        self._subscription = await self.js.pull_subscribe_bind(
            durable=self.spec.durable, stream=TASKS_STREAM
        )
        log.info("response_feed_started", durable=self.spec.durable)

    async def run(self) -> None:
        """Fetch and store batches until :meth:`stop`."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.step()
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("response_feed_step_failed", error=repr(exc))
                    await asyncio.sleep(self.spec.nak_delay_s)
        finally:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                with suppress(nats.errors.Error, OSError, TimeoutError):
                    await subscription.unsubscribe()

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stopping.set()

    async def pending(self) -> int:
        """Messages not yet acknowledged."""
        info = await self.js.consumer_info(TASKS_STREAM, self.spec.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def run_until_caught_up(self) -> None:
        """Store what the stream holds now (tests, rebuilds)."""
        while await self.pending() > 0:
            await self.step()

    async def step(self) -> bool:
        """Fetch one batch and store it; False when nothing was waiting."""
        assert self._subscription is not None, "call start() first"
        try:
            batch = await self._subscription.fetch(
                self.spec.batch_size, timeout=self.spec.fetch_timeout_s
            )
        except (nats.errors.TimeoutError, TimeoutError):
            return False
        decoded: list[tuple[Msg, Message]] = []
        for msg in batch:
            try:
                decoded.append((msg, parse_response_message(msg.subject, msg.data)))
            except (ValidationError, ValueError) as exc:
                await self._dead_letter(msg, f"undecodable: {str(exc)[:300]}")
        if decoded:
            await self._apply(decoded)
        return bool(batch)

    async def _apply(self, decoded: list[tuple[Msg, Message]]) -> None:
        messages = [m for _, m in decoded]
        try:
            await store(self.engine, messages)
        except Exception as exc:
            log.warning("response_feed_store_failed", error=repr(exc), size=len(decoded))
            if len(decoded) > 1:  # isolate the culprit: the others are stored
                for one in decoded:
                    await self._apply([one])
                return
            for msg, _ in decoded:
                if msg.metadata.num_delivered >= self.spec.max_deliver:
                    await self._dead_letter(msg, f"max_deliver: {exc!r}"[:400])
                else:
                    await msg.nak(delay=self.spec.nak_delay_s)
            return
        for msg, _ in decoded:
            await msg.ack()
        self.on_committed(touched(messages, self.calendar))

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        headers = {
            DEAD_REASON_HEADER: reason.replace("\n", " "),
            ORIGINAL_SUBJECT_HEADER: msg.subject,
        }
        await self.js.publish(
            dead_letter_subject("aggregator", msg.subject),
            msg.data,
            headers=headers,
            stream=DEAD_LETTER_STREAM,
        )
        await msg.term()
        log.error("response_feed_dead_lettered", subject=msg.subject)
