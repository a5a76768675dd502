"""Publishing admitted events to JetStream, de-duplicated by ``Nats-Msg-Id``.

All events of a submission are sent back to back with ``publish_async`` and
their acknowledgements awaited together: one round trip per submission, not
one per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from zhibao_intake.domain.admission import Admitted
from zhibao_intake.metrics import PUBLISH_LATENCY
from zhibao_shared.broker import bus_connected
from zhibao_shared.subjects import EVENTS_STREAM

MAX_PENDING = 20_000


class BusUnavailable(RuntimeError):
    """JetStream did not acknowledge: the event is not known to be stored."""


PublishOutcome = bool | BusUnavailable


class JetStreamPublisher:
    """Publishes events and waits for JetStream's acknowledgements."""

    def __init__(self, broker: NatsBroker, timeout_s: float) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self._js: JetStreamContext | None = None

    def _context(self) -> JetStreamContext:
        if self._js is None:
            self._js = self._broker.connection.jetstream(publish_async_max_pending=MAX_PENDING)
        return self._js

    async def publish(self, batch: Sequence[Admitted]) -> list[PublishOutcome]:
        """Store events; per event True for a duplicate, False when new, or the failure."""
        if not bus_connected(self._broker):
            return [BusUnavailable("not connected to NATS")] * len(batch)
        started = time.perf_counter()
        js = self._context()
        try:
            futures = [
                await js.publish_async(
                    a.bus_subject,
                    a.payload,
                    stream=EVENTS_STREAM,
                    headers={"Nats-Msg-Id": a.msg_id},
                )
                for a in batch
            ]
        except (NatsError, OSError) as exc:
            return [BusUnavailable(str(exc) or type(exc).__name__)] * len(batch)
        # One wait for the whole batch (a wait_for per future costs a task each).
        await asyncio.wait(futures, timeout=self._timeout_s)
        acks = [_settle(f) for f in futures]
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        return [_outcome(ack) for ack in acks]


def _settle(future: asyncio.Future[PubAck]) -> PubAck | BaseException:
    if not future.done():
        future.cancel()
        return TimeoutError("no acknowledgement in time")
    return future.exception() or future.result()


def _outcome(ack: PubAck | BaseException) -> PublishOutcome:
    if isinstance(ack, PubAck):
        return bool(ack.duplicate)
    if isinstance(ack, (NatsError, TimeoutError, OSError)):
        return BusUnavailable(str(ack) or type(ack).__name__)
    raise ack
