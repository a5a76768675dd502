"""The events consumer lingers after a short batch, so events arriving meanwhile share one
transaction (real nats-server: batching is the server's and the client's doing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import nats
from nats.js import JetStreamContext

from tests.aggregator.test_http_and_dead_letter import _confirmed
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchConsumer, BatchHandler, ConsumerSpec, Delivery
from zhibao_shared.events import published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.subjects import EVENTS_STREAM

SUBJECT = "zhibao.events.640106.640106001001.case"
#: Far longer than the spread of the events sent while the consumer lingers.
LINGER_S = 1.5


async def _publish(js: JetStreamContext, n: int) -> None:
    await js.publish(
        SUBJECT,
        published_payload(_confirmed(f"{n:032x}", f"x{n}")),
        stream=EVENTS_STREAM,
        headers={"Nats-Msg-Id": str(n)},
    )


@asynccontextmanager
async def _consuming(
    nats_server: NatsServer, linger_s: float, handler: BatchHandler, batch_size: int = 200
) -> AsyncIterator[tuple[JetStreamContext, BatchConsumer]]:
    """A running consumer with ``linger_s`` on a fresh events stream; stopped on exit."""
    settings = ZhibaoSettings()
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    spec = ConsumerSpec(
        service="linger-test", durable="linger-test", batch_size=batch_size, linger_s=linger_s
    )
    consumer = BatchConsumer(js, spec, handler, settings)
    try:
        await ensure_stream(js, events_stream_config(settings))
        await consumer.start()
        running = asyncio.create_task(consumer.run())
        yield js, consumer
        await consumer.stop()
        await asyncio.wait_for(running, 20)
    finally:
        await client.close()


async def _batches_after_a_first_event(nats_server: NatsServer, linger_s: float) -> list[int]:
    """Sizes of the handler's batches: one event, then three sent 0.1 s apart."""
    batches: list[int] = []
    first, all_four = asyncio.Event(), asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> None:
        batches.append(len(batch))
        first.set()
        if sum(batches) >= 4:
            all_four.set()

    async with _consuming(nats_server, linger_s, handler) as (js, _):
        await asyncio.sleep(0.3)  # the consumer found nothing: it waits for one event
        await _publish(js, 0)
        await asyncio.wait_for(first.wait(), 20)
        for n in (1, 2, 3):
            await asyncio.sleep(0.1)
            await _publish(js, n)
        await asyncio.wait_for(all_four.wait(), 20)
    return batches


async def test_events_arriving_while_the_consumer_lingers_are_handled_in_one_batch(
    nats_server: NatsServer,
) -> None:
    assert await _batches_after_a_first_event(nats_server, LINGER_S) == [1, 3]


async def test_without_linger_each_event_is_handled_as_it_arrives(
    nats_server: NatsServer,
) -> None:
    assert await _batches_after_a_first_event(nats_server, 0) == [1, 1, 1, 1]


async def test_a_backlog_is_fetched_without_lingering(nats_server: NatsServer) -> None:
    """Full batches (events waiting) follow one another at once, however long the linger:
    six events waiting, batches of two, a 600 s linger: all handled within 20 s. (The
    first fetch takes one message: before it, a message may be a bundle of up to
    ``MAX_BUNDLE_EVENTS``.)"""
    batches: list[int] = []
    all_six = asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> None:
        batches.append(len(batch))
        if sum(batches) >= 6:
            all_six.set()

    settings = ZhibaoSettings()
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for n in range(6):
            await _publish(js, n)
    finally:
        await client.close()
    async with _consuming(nats_server, 600, handler, batch_size=2):
        await asyncio.wait_for(all_six.wait(), 20)
    assert batches == [1, 2, 2, 1]


async def test_stop_does_not_wait_out_the_linger(nats_server: NatsServer) -> None:
    """A consumer asked to stop while lingering returns at once (graceful shutdown):
    leaving the block stops it and waits at most 20 s of a 600 s linger."""
    handled = asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> None:
        handled.set()

    async with _consuming(nats_server, 600, handler) as (js, consumer):
        await _publish(js, 0)
        await asyncio.wait_for(handled.wait(), 20)
    assert consumer.stats.acked == 1
