"""The audit trail projected into the aggregator's read model (``GET /v1/audit``).

Two sources:

* stream ZHIBAO_AUDIT, read by the durable consumer ``<durable>-audit`` from its
  first message (a :class:`~zhibao_shared.stream_feed.StreamFeed`): every service's
  records (:mod:`zhibao_shared.audit`);
* the token store's ``token_actions`` table (token creations and revocations, which
  ``zhibao token`` records there because it runs with or without a bus), copied
  every few seconds.

Rows are keyed by where they came from (stream sequence, line and item; token action
number and scope), so a redelivered message, a second copy, or several aggregator
partitions sharing one PostgreSQL store each row once. A batch is stored in one
transaction and acknowledged after the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.audit_rows import Row, token_action_rows, trail_rows
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.storage.audit import store_rows
from zhibao_shared.stream_feed import FeedSpec, StreamFeed
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)
#: Token actions re-read below the last one seen (rows numbered by one database
#: sequence may commit out of order; storing them again changes nothing).
TOKEN_OVERLAP = 100
#: Seconds between copies of the token store's actions.
TOKENS_INTERVAL_S = 2.0


@dataclass(frozen=True)
class StoreRows:
    """Stores the rows of a batch of messages in one transaction."""

    engine: AsyncEngine

    async def __call__(self, batches: Sequence[list[Row]]) -> None:
        async with self.engine.begin() as conn:
            await store_rows(conn, [row for rows in batches for row in rows])


class AuditFeed:
    """The audit stream's consumer and the token actions' copier, into one table."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: FeedSpec,
        engine: AsyncEngine,
        calendar: Calendar,
        tokens: TokenStore,
    ) -> None:
        self.engine = engine
        self.calendar = calendar
        self.tokens = tokens
        self.stream = StreamFeed(js, spec, self._decode, StoreRows(engine))
        self._tokens_seen = 0

    def _decode(self, msg: Msg) -> list[Row]:
        return trail_rows(msg.metadata.sequence.stream, msg.data, self.calendar)

    async def start(self) -> None:
        """Declare the durable consumer (the audit stream must exist) and bind to it."""
        await self.stream.start()

    async def run(self) -> None:
        """Store the stream's records until :meth:`stop`."""
        await self.stream.run()

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        await self.stream.stop()

    async def run_until_caught_up(self) -> None:
        """Store what the stream holds now (tests)."""
        await self.stream.run_until_caught_up()

    async def copy_tokens_forever(self, interval_s: float = TOKENS_INTERVAL_S) -> None:
        """Copy the token store's actions every ``interval_s`` until cancelled."""
        while True:
            try:
                await self.copy_tokens()
            except SQLAlchemyError as exc:
                log.warning("audit_token_copy_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_s)

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
