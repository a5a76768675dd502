"""A consumer takes a backlog of bundles about a batch of events at a time (real
nats-server): what a service holds in memory follows its batch size, not how many
events each waiting message carries."""

from __future__ import annotations

from collections.abc import Sequence

import nats

from tests.aggregator.test_http_and_dead_letter import _confirmed
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchConsumer, ConsumerSpec, Delivery
from zhibao_shared.events import bundle_payload, published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject

BUNDLES, PER_BUNDLE, BATCH = 30, 50, 100


async def test_a_backlog_of_bundles_is_taken_a_batch_of_events_at_a_time(
    nats_server: NatsServer,
) -> None:
    """30 bundles of 50 events waiting, batches of 100 events: no step takes more than
    100 events from the server, and once the consumer has seen a bundle its steps are
    full. (A first fetch sized in messages took all 1,500 events in one step: a service
    restarting on a backlog of 200-event bundles decoded a million events at once.)"""
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
    assert max(per_step) <= BATCH
    assert per_step[0] == PER_BUNDLE  # before any message, the largest bundle is assumed
    assert per_step[1:-1] == [BATCH] * (len(per_step) - 2)
