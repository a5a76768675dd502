"""Two aggregator instances on one database and one durable consumer, as a rolling
update (``maxSurge: 1``) runs them: every figure is still exact, nobody counted twice.
On PostgreSQL and on SQLite (the embedded default: an instance started before the old
one has stopped).

The seeded scenario (reclassifications, people moving between communities, isolations,
repeated daily reports, events stored twice, shuffled arrival) is consumed by both at
once in small batches, so one person's events are applied by both instances at the
same time.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import consume, publish, read_all
from tests.support.postgres import both_backends
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration
database = both_backends("aggregator")


async def test_two_instances_on_one_database_count_every_person_once(
    nats_server: NatsServer, settings: AggregatorSettings, database: str
) -> None:
    scenario = generate(seed=20211105)
    await publish(nats_server.url, scenario, settings)
    await migrate(database)
    first, second = make_engine(database), make_engine(database)
    try:
        consumers = await asyncio.gather(
            consume(nats_server.url, first, settings, batch_size=8),
            consume(nats_server.url, second, settings, batch_size=8),
        )
        assert all(c.stats.batches > 10 for c in consumers), "both instances took part"
        assert sum(c.stats.dead_lettered for c in consumers) == 0
        actual = await read_all(first, settings, scenario.days)
    finally:
        await first.dispose()
        await second.dispose()
    assert compare(actual, truth(scenario)) == []
