"""The one durable pull consumer for Zhibao's message streams other than events.

Events have :mod:`zhibao_shared.consumer` (bundles, per-event dedup). The other
streams (the response service's tasks stream with its task, level and point messages,
the audit stream …) carry one message per thing, and their readers all need the same
plumbing: a named durable consumer filtered to some subjects, batches decoded and
applied in one transaction, acknowledged only after the commit.

Guarantees:

* **At least once, never lost.** A batch is acked after ``apply`` returned. When it
  raises, the batch is retried message by message so one bad message is isolated; a
  message that still fails is nak'd with a delay and comes back, and after
  ``max_deliver`` deliveries it is parked on the dead-letter stream. ``apply`` must be
  idempotent (redeliveries happen).
* **Undecodable is poison at once.** A message ``decode`` refuses (``ValueError``,
  which includes pydantic's ``ValidationError``) can never become readable: it is
  parked on ``zhibao.deadletter.<service>.<subject>`` and terminated.
* **Transient failures of the bus** (fetch errors) are logged and retried after a
  pause; they never dead-letter anything.

Why nats-py's pull subscription rather than a FastStream subscriber: FastStream's
batch pull loop lets nats-py's plain ``TimeoutError`` (a partial batch whose deadline
ran out) escape, dropping the messages already fetched until their ack wait expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from zhibao_shared.broker import release_pull
from zhibao_shared.consumer import DEAD_REASON_HEADER, ORIGINAL_SUBJECT_HEADER
from zhibao_shared.subjects import DEAD_LETTER_STREAM, dead_letter_subject

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class FeedSpec:
    """Which stream and subjects a feed reads, under which durable name, and how."""

    service: str
    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    batch_size: int = 200
    #: How long one fetch waits to fill a batch: an idle feed asks this often.
    fetch_timeout_s: float = 1.0
    max_deliver: int = 5
    nak_delay_s: float = 1.0
    ack_wait_s: float = 30.0

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer, from the stream's first message, explicit acks
        (redelivered after ``ack_wait_s`` when an instance died holding a batch)."""
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max(1000, self.batch_size * 4),
            filter_subjects=list(self.filter_subjects),
        )


class StreamFeed(Generic[T]):
    """Fetches batches, decodes each message with ``decode`` and hands them to ``apply``."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: FeedSpec,
        decode: Callable[[Msg], T],
        apply: Callable[[Sequence[T]], Awaitable[None]],
    ) -> None:
        self.spec = spec
        self._js = js
        self._decode = decode
        self._apply = apply
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Create (or update) the durable consumer and bind to it (the stream must exist)."""
        await self._js.add_consumer(self.spec.stream, self.spec.consumer_config())
        self._subscription = await self._js.pull_subscribe_bind(
            durable=self.spec.durable, stream=self.spec.stream
        )
        log.info("feed_started", stream=self.spec.stream, durable=self.spec.durable)

    async def run(self) -> None:
        """Fetch and apply batches until :meth:`stop`, then unsubscribe."""
        try:
            while not self._stopping.is_set():
                await self.step()
        finally:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                await release_pull(subscription)

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stopping.set()

    async def present(self) -> bool:
        """True while the durable consumer exists on the server."""
        try:
            await self._js.consumer_info(self.spec.stream, self.spec.durable, timeout=2.0)
        except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
            return False
        return True

    async def pending(self) -> int:
        """Messages not yet acknowledged."""
        info = await self._js.consumer_info(self.spec.stream, self.spec.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def run_until_caught_up(self) -> None:
        """Apply what the stream holds now (rebuilds, tests)."""
        while await self.pending() > 0:
            await self.step()

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
            log.warning("feed_fetch_failed", durable=self.spec.durable, error=type(exc).__name__)
            await asyncio.sleep(self.spec.nak_delay_s)
            return False
        await self.handle(batch)
        return bool(batch)

    async def handle(self, batch: Sequence[Msg]) -> None:
        """Decode a batch, apply it, then ack it (see the module's guarantees)."""
        decoded: list[tuple[Msg, T]] = []
        for msg in batch:
            try:
                decoded.append((msg, self._decode(msg)))
            except ValueError as exc:
                await self._dead_letter(msg, f"undecodable: {str(exc)[:300]}")
        if decoded:
            await self._apply_isolating(decoded)

    async def _apply_isolating(self, decoded: list[tuple[Msg, T]]) -> None:
        try:
            await self._apply([item for _, item in decoded])
        except Exception as exc:
            # Only the exception's type: its text may quote the message's data.
            log.warning("feed_apply_failed", durable=self.spec.durable, error=type(exc).__name__)
            if len(decoded) > 1:  # isolate the culprit: the others are applied
                for one in decoded:
                    await self._apply_isolating([one])
                return
            [(msg, _)] = decoded
            if msg.metadata.num_delivered >= self.spec.max_deliver:
                await self._dead_letter(msg, f"max_deliver: {type(exc).__name__}")
            else:
                await msg.nak(delay=self.spec.nak_delay_s)
            return
        for msg, _ in decoded:
            await msg.ack()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """Park a message on the dead-letter stream and terminate it."""
        meta = msg.metadata
        await self._js.publish(
            dead_letter_subject(self.spec.service, msg.subject),
            msg.data,
            headers={
                DEAD_REASON_HEADER: reason.replace("\n", " "),
                ORIGINAL_SUBJECT_HEADER: msg.subject,
                "Nats-Msg-Id": f"{self.spec.durable}:{meta.stream}:{meta.sequence.stream}",
            },
            stream=DEAD_LETTER_STREAM,
        )
        await msg.term()
        log.error("feed_dead_lettered", subject=msg.subject, sequence=meta.sequence.stream)
