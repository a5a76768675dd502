"""Publishing admitted events to JetStream, de-duplicated by ``Nats-Msg-Id``."""

from __future__ import annotations

import time

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from zhibao_intake.domain.admission import Admitted
from zhibao_intake.metrics import PUBLISH_LATENCY
from zhibao_shared.broker import bus_connected
from zhibao_shared.events import published_payload
from zhibao_shared.subjects import EVENTS_STREAM


class BusUnavailable(RuntimeError):
    """JetStream did not acknowledge: the event is not known to be stored."""


class JetStreamPublisher:
    """Publishes events and waits for JetStream's acknowledgement."""

    def __init__(self, broker: NatsBroker, timeout_s: float) -> None:
        self._broker = broker
        self._timeout_s = timeout_s

    async def publish(self, admitted: Admitted) -> bool:
        """Store one event; True when JetStream already had it (a duplicate)."""
        if not bus_connected(self._broker):
            raise BusUnavailable("not connected to NATS")
        started = time.perf_counter()
        try:
            ack = await self._broker.publish(
                published_payload(admitted.event),
                admitted.bus_subject,
                headers={
                    "Nats-Msg-Id": admitted.msg_id,
                    "content-type": "application/cloudevents+json",
                },
                stream=EVENTS_STREAM,
                timeout=self._timeout_s,
            )
        except (NatsError, TimeoutError, OSError) as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from exc
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        if ack is None:
            raise BusUnavailable("JetStream gave no acknowledgement")
        return bool(ack.duplicate)
