"""Helpers for aggregator tests: publish like intake does, consume, read every figure."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date

import nats
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import Figures, Scenario
from zhibao_aggregator.bootstrap import consumer_spec, reader, rules
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchConsumer, BatchHandler, Delivery
from zhibao_shared.events import PublishedEvent, bundle_payload, published_payload
from zhibao_shared.hierarchy import district_of, load_registry
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject, event_subject


async def publish(url: str, scenario: Scenario, settings: AggregatorSettings) -> None:
    """Publish every event as intake does: lone events and bundles, with ``Nats-Msg-Id``.

    Runs of 1 to 40 events (seeded) go as one message: a run of one on the event's own
    subject, a longer run as a bundle, so repeats land in the same bundle and in others.
    """
    rng = random.Random(len(scenario.publish))
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        start = 0
        while start < len(scenario.publish):
            run = scenario.publish[start : start + rng.randint(1, 40)]
            start += len(run)
            subject, payload, headers = _message(run)
            await js.publish(subject, payload, headers=headers, stream=EVENTS_STREAM)
    finally:
        await client.close()


def _message(run: Sequence[tuple[PublishedEvent, str]]) -> tuple[str, bytes, dict[str, str]]:
    if len(run) == 1:
        event, msg_id = run[0]
        subject = event_subject(event.subject, event.type.short)
        return subject, published_payload(event), {"Nats-Msg-Id": msg_id}
    payload = bundle_payload([published_payload(e) for e, _ in run])
    msg_id = "bundle " + "|".join(m for _, m in run)
    return bundle_subject(district_of(run[0][0].subject)), payload, {"Nats-Msg-Id": msg_id}


async def consume(
    url: str,
    engine: AsyncEngine,
    settings: AggregatorSettings,
    wrap: object = None,
    batch_size: int = 150,
) -> BatchConsumer:
    """Consume everything in the stream with the aggregator's handler (optionally wrapped)."""
    client = await nats.connect(url)
    try:
        handler: BatchHandler = ApplyBatch(engine, rules(settings), lambda _changed: None)
        if callable(wrap):
            handler = wrap(handler)
        spec = consumer_spec(settings)
        spec = type(spec)(**{**spec.__dict__, "batch_size": batch_size, "nak_delay_s": 0.05})
        consumer = BatchConsumer(client.jetstream(), spec, handler, settings)
        await consumer.start()
        await consumer.run_until_caught_up()
        return consumer
    finally:
        await client.close()


async def read_all(
    engine: AsyncEngine, settings: AggregatorSettings, days: Sequence[date]
) -> dict[tuple[str, date], Figures]:
    """Every unit's figures on every day (one read of all units a day: the whole city)."""
    read_side = reader(settings, engine)
    codes = [unit.code for unit in load_registry()]
    found: dict[tuple[str, date], Figures] = {}
    for day in days:
        for code, figures in (await read_side.figures_of(codes, day)).items():
            found[(code, day)] = dict(figures)
    return found


class FlakyAfterCommit:
    """Raises after the commit for the first ``times`` batches: the acks are lost, so
    JetStream redelivers batches that were already applied."""

    def __init__(self, inner: BatchHandler, times: int) -> None:
        self.inner = inner
        self.left = times

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        await self.inner(batch)
        if self.left > 0:
            self.left -= 1
            raise ConnectionResetError("ack path lost after commit (test)")


async def publish_each(
    url: str, events: Sequence[PublishedEvent], settings: AggregatorSettings, again: str = ""
) -> None:
    """Publish events one message each, in this order, as intake would (``again``: a suffix
    of the message ids, to store events the stream already holds once more)."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for event in events:
            subject, payload, headers = _message([(event, event.dedup_key + again)])
            await js.publish(subject, payload, headers=headers, stream=EVENTS_STREAM)
    finally:
        await client.close()
