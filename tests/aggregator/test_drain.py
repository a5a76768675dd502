"""A stopping aggregator finishes the batch in hand and hands back what it did not start:
the instance after it counts every event at once, not after ``ack_wait``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.aggregator.generator import Scenario, compare, generate, truth
from tests.aggregator.harness import publish, read_all
from zhibao_aggregator.bootstrap import Aggregator, build
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.consumer import BatchHandler, Delivery
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration

#: Far longer than the test may take: nothing may depend on a redelivery after it.
ACK_WAIT_S = 600.0


class _Held:
    """The handler, held at its first batch until released."""

    def __init__(self, inner: BatchHandler) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
        self.handled = 0

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        self.entered.set()
        await self.released.wait()
        await self.inner(batch)
        self.handled += len(batch)


async def _running(settings: AggregatorSettings) -> Aggregator:
    aggregator = build(settings)
    await aggregator.connect()
    return aggregator


async def _exact(aggregator: Aggregator, scenario: Scenario) -> bool:
    figures = await read_all(aggregator.engine, aggregator.settings, scenario.days)
    return compare(figures, truth(scenario)) == []


async def test_a_stop_during_a_batch_loses_no_time(nats_server: NatsServer, tmp_path: Path) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, aggregator_ack_wait_s=ACK_WAIT_S
    )
    scenario = generate(seed=5, screenings=300)
    await publish(nats_server.url, scenario, settings)
    await migrate(settings.database_url())
    first = await _running(settings)
    assert first.consumer is not None
    held = _Held(first.consumer.handler)
    first.consumer.handler = held
    await held.entered.wait()

    closing = asyncio.create_task(first.close())
    # SIGTERM came while the batch was being counted; the service's other loops have
    # stopped (a fetch waits at most idle_wait_s) by the time the batch is done.
    await asyncio.sleep(3 * first.consumer.spec.idle_wait_s)
    held.released.set()
    first.consumer.handler = held.inner  # the service closes its own handler
    await closing
    assert held.handled > 0
    assert first.consumer.stats.events == held.handled, "the batch in hand was not acked"

    second = await _running(settings)
    try:
        async with asyncio.timeout(60):
            while not await _exact(second, scenario):  # noqa: ASYNC110 - rows, not an event
                await asyncio.sleep(0.2)
    finally:
        await second.close()
