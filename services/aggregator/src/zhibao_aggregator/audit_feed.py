"""The audit trail projected into the aggregator's read model (``GET /v1/audit``).

Two sources:

* stream ZHIBAO_AUDIT, read by the durable consumer ``<durable>-audit`` from its
  first message: every service's records (:mod:`zhibao_shared.audit`);
* the token store's ``token_actions`` table (token creations and revocations, which
  ``zhibao token`` records there because it runs with or without a bus), copied
  every few seconds.

Rows are keyed by where they came from (stream sequence and line; token action
number), so a redelivered message, a second copy, or several aggregator partitions
sharing one PostgreSQL store each row once. A batch is stored in one transaction
and acknowledged after the commit.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.audit_rows import token_action_rows, trail_rows
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.storage.audit import store_rows
from zhibao_shared.consumer import DEAD_REASON_HEADER, ORIGINAL_SUBJECT_HEADER
from zhibao_shared.subjects import AUDIT_ALL, AUDIT_STREAM, DEAD_LETTER_STREAM, dead_letter_subject
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)
#: Token actions re-read below the last one seen (rows numbered by one database
#: sequence may commit out of order; storing them again changes nothing).
TOKEN_OVERLAP = 100


@dataclass(frozen=True)
class AuditFeedSpec:
    """How the aggregator consumes the audit stream."""

    durable: str
    batch_size: int = 200
    fetch_timeout_s: float = 0.5
    max_deliver: int = 5
    nak_delay_s: float = 1.0
    ack_wait_s: float = 30.0
    #: Seconds between copies of the token store's actions.
    tokens_interval_s: float = 2.0

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer on the audit stream, from its first message."""
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=1000,
            filter_subject=AUDIT_ALL,
        )


@dataclass
class AuditFeed:
    """A durable pull consumer of the audit stream, and the token actions' copier."""

    js: JetStreamContext
    spec: AuditFeedSpec
    engine: AsyncEngine
    calendar: Calendar
    tokens: TokenStore
    _subscription: JetStreamContext.PullSubscription | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tokens_seen: int = 0

    async def start(self) -> None:
        """Declare the durable consumer (the audit stream must exist) and bind to it."""
        await self.js.add_consumer(AUDIT_STREAM, self.spec.consumer_config())
        self._subscription = await self.js.pull_subscribe_bind(
            durable=self.spec.durable, stream=AUDIT_STREAM
        )
        log.info("audit_feed_started", durable=self.spec.durable)

    async def run(self) -> None:
        """Fetch and store batches until :meth:`stop`."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.step()
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    log.warning("audit_feed_step_failed", error=repr(exc))
                    await asyncio.sleep(self.spec.nak_delay_s)
        finally:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                with suppress(nats.errors.Error, OSError, TimeoutError):
                    await subscription.unsubscribe()

    async def copy_tokens_forever(self) -> None:
        """Copy the token store's actions every ``tokens_interval_s`` until cancelled."""
        while True:
            try:
                await self.copy_tokens()
            except SQLAlchemyError as exc:
                log.warning("audit_token_copy_failed", error=type(exc).__name__)
            await asyncio.sleep(self.spec.tokens_interval_s)

    async def copy_tokens(self) -> int:
        """Store the token actions not seen yet; returns how many were read."""
        after = max(0, self._tokens_seen - TOKEN_OVERLAP)
        actions = await asyncio.to_thread(self.tokens.actions, after)
        if not actions:
            return 0
        rows = [row for action in actions for row in token_action_rows(action, self.calendar)]
        async with self.engine.begin() as conn:
            await store_rows(conn, rows)
        self._tokens_seen = max(self._tokens_seen, max(a.seq for a in actions))
        return len(actions)

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stopping.set()

    async def pending(self) -> int:
        """Messages not yet acknowledged."""
        info = await self.js.consumer_info(AUDIT_STREAM, self.spec.durable)
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
        await self._apply(batch)
        return bool(batch)

    async def _apply(self, batch: list[Msg]) -> None:
        rows = [
            row
            for msg in batch
            for row in trail_rows(msg.metadata.sequence.stream, msg.data, self.calendar)
        ]
        try:
            async with self.engine.begin() as conn:
                await store_rows(conn, rows)
        except SQLAlchemyError as exc:
            log.warning("audit_feed_store_failed", error=type(exc).__name__, size=len(batch))
            if len(batch) > 1:  # isolate the culprit: the others are stored
                for one in batch:
                    await self._apply([one])
                return
            await self._give_up_or_retry(batch[0], exc)
            return
        for msg in batch:
            await msg.ack()

    async def _give_up_or_retry(self, msg: Msg, exc: Exception) -> None:
        if msg.metadata.num_delivered < self.spec.max_deliver:
            await msg.nak(delay=self.spec.nak_delay_s)
            return
        headers = {
            DEAD_REASON_HEADER: f"max_deliver: {type(exc).__name__}",
            ORIGINAL_SUBJECT_HEADER: msg.subject,
        }
        await self.js.publish(
            dead_letter_subject("aggregator", msg.subject),
            msg.data,
            headers=headers,
            stream=DEAD_LETTER_STREAM,
        )
        await msg.term()
        log.error("audit_feed_dead_lettered", subject=msg.subject)
