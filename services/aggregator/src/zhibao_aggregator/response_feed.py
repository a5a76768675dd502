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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.changes import Changed, ignore_changes
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.storage import levels, points
from zhibao_shared.hierarchy import lineage
from zhibao_shared.response_events import LevelMessage, PointMessage, parse_response_message
from zhibao_shared.stream_feed import FeedSpec, StreamFeed

Message = LevelMessage | PointMessage


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


def decode(msg: Msg) -> Message:
    """A level or point message (``ValueError`` when it is neither)."""
    return parse_response_message(msg.subject, msg.data)


@dataclass(frozen=True)
class StoreResponse:
    """Stores a batch of level and point messages, then says which rollups changed."""

    engine: AsyncEngine
    calendar: Calendar
    on_committed: Changed

    async def __call__(self, messages: Sequence[Message]) -> None:
        await store(self.engine, messages)
        self.on_committed(touched(messages, self.calendar))


def response_feed(
    js: JetStreamContext,
    spec: FeedSpec,
    engine: AsyncEngine,
    calendar: Calendar,
    on_committed: Changed = ignore_changes,
) -> StreamFeed[Message]:
    """The durable pull consumer of level and point messages."""
    return StreamFeed(js, spec, decode, StoreResponse(engine, calendar, on_committed))
