"""A consumer takes a backlog of bundles a few batches of events at a time (real
nats-server): what a service holds in memory follows its batch size, not how many
events each waiting message carries; bundles of mixed sizes still fill a batch."""

from __future__ import annotations

from collections.abc import Sequence

import nats

from tests.aggregator.test_http_and_dead_letter import _confirmed
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import SPREAD, BatchConsumer, ConsumerSpec, Delivery, MessageSizes
from zhibao_shared.events import bundle_payload, published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject

BUNDLES, PER_BUNDLE, BATCH = 60, 50, 100


async def test_a_backlog_of_bundles_is_taken_a_few_batches_of_events_at_a_time(
    nats_server: NatsServer,
) -> None:
    """60 bundles of 50 events waiting, batches of 100 events: no step takes more than
    a few batches from the server, and once the consumer has seen a bundle its steps
    are full. (A first fetch sized by a mean of one event a message took all 3,000
    events in one step: a service restarting on a backlog of 200-event bundles decoded
    a million events at once.)"""
    handled: list[int] = []

    async def handler(batch: Sequence[Delivery]) -> None:
        handled.append(len(batch))

    settings = ZhibaoSettings()
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for b in range(BUNDLES):
            events = [_confirmed(f"{b:016x}{n:016x}", f"b{b}-{n}") for n in range(PER_BUNDLE)]
            await js.publish(
                bundle_subject("640106"),
                bundle_payload([published_payload(e) for e in events]),
                stream=EVENTS_STREAM,
                headers={"Nats-Msg-Id": f"bundle {b}"},
            )
        spec = ConsumerSpec(service="fetch-test", durable="fetch-test", batch_size=BATCH)
        consumer = BatchConsumer(js, spec, handler, settings)
        await consumer.start()
        per_step: list[int] = []
        while sum(per_step) < BUNDLES * PER_BUNDLE:
            before = sum(handled)
            assert await consumer.step()
            per_step.append(sum(handled) - before)
    finally:
        await client.close()
    assert max(per_step) <= SPREAD * BATCH
    assert max(handled) <= BATCH  # each transaction a batch at most
    assert per_step[0] == PER_BUNDLE  # before any message, the largest bundle is assumed
    assert all(step >= BATCH for step in per_step[1:-1])


def test_bundles_of_mixed_sizes_fill_a_batch() -> None:
    """Intake splits a submission by district: bundles of 5 to 40 events. A fetch asks
    for as many as hold a batch on average, not as many as would if all were of 40."""
    sizes = MessageSizes()
    for _ in range(10):
        sizes.fetched(8, [5, 10, 15, 20, 25, 30, 35, 40])
    assert sizes.messages_for(5000) == 5000 // 22
