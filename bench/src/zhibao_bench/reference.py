"""The machine's own limit: nats-py alone, no Zhibao code in the path.

Publishes single events to a JetStream stream with ``publish_async`` (each
acknowledged) and drains them with a pull consumer that fetches and acks —
the ceiling any pipeline built on JetStream here can be compared with.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

STREAM = "BENCH_REFERENCE"
SUBJECT = "bench.reference"


@dataclass(frozen=True)
class ReferenceResult:
    """Events per second for publishing (acked) and for consuming (fetched and acked)."""

    events: int
    publish_per_s: float
    consume_per_s: float

    @property
    def events_per_s(self) -> float:
        """The pipeline ceiling: a pipeline runs no faster than its slower stage."""
        return min(self.publish_per_s, self.consume_per_s)


async def _publish(js: nats.js.JetStreamContext, payload: bytes, events: int) -> float:
    started = time.perf_counter()
    window = []
    for i in range(events):
        window.append(await js.publish_async(SUBJECT, payload, headers={"Nats-Msg-Id": str(i)}))
        if len(window) >= 4000:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)
    return events / (time.perf_counter() - started)


async def _consume(js: nats.js.JetStreamContext, events: int, batch: int) -> float:
    sub = await js.pull_subscribe(
        SUBJECT,
        durable="bench",
        stream=STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1),
    )
    started = time.perf_counter()
    seen = 0
    while seen < events:
        messages = await sub.fetch(batch, timeout=5)
        for message in messages:
            await message.ack()
        seen += len(messages)
    return events / (time.perf_counter() - started)


async def measure_reference(
    url: str, events: int, payload: bytes, batch: int = 500
) -> ReferenceResult:
    """Run both phases against the nats-server at ``url`` (a fresh stream each time)."""
    client = await nats.connect(url)
    try:
        js = client.jetstream(publish_async_max_pending=8000)
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE))
        publish = await _publish(js, payload, events)
        consume = await _consume(js, events, batch)
        await js.delete_stream(STREAM)
        return ReferenceResult(events, publish, consume)
    finally:
        await client.close()
