"""Rollups at every level equal an independently computed truth, exactly.

A seeded scenario of a few thousand events (reclassifications, moves, late
events, repeated daily reports, events stored twice in the stream, shuffled
arrival) goes through a real nats-server; the first batches lose their acks
after the commit so JetStream redelivers them. SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import FlakyAfterCommit, consume, publish, read_all
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration


async def _exact(url: str, db_url: str, settings: AggregatorSettings) -> None:
    scenario = generate(seed=20200123)
    assert len(scenario.publish) > 2500
    await publish(url, scenario, settings)
    await migrate(db_url)
    engine = make_engine(db_url)
    try:
        consumer = await consume(url, engine, settings, wrap=lambda h: FlakyAfterCommit(h, times=3))
        assert consumer.stats.failures == 3  # the redeliveries really happened
        assert consumer.stats.dead_lettered == 0
        actual = await read_all(engine, settings, scenario.days)
    finally:
        await engine.dispose()
    assert compare(actual, truth(scenario)) == []


async def test_rollups_are_exact_on_sqlite(
    nats_server: NatsServer, settings: AggregatorSettings
) -> None:
    await _exact(nats_server.url, settings.database_url(), settings)


async def test_rollups_are_exact_on_postgresql(
    nats_server: NatsServer, settings: AggregatorSettings, postgres_url: str
) -> None:
    await _exact(nats_server.url, postgres_url, settings)
