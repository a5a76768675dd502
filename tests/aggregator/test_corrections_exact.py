"""Rollups of a corrected stream equal the truth of what the corrections leave, exactly.

A seeded scenario (as in ``test_exactness``) gets corrections of a tenth of its events
(retractions and replacements, one to three per event, in the stream at random places:
some before their event, some twice); the first batches lose their acks after the
commit. Every figure at every level must equal the naive truth of the scenario with
each event as its last correction leaves it, and ``corrections`` must count each
correction once on its event's day. SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.aggregator.corrections_generator import correct
from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import FlakyAfterCommit, consume, publish, read_all
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration


async def _exact(url: str, db_url: str, settings: AggregatorSettings) -> None:
    corrected = correct(generate(seed=20201203, screenings=900, persons=100, isolated=50), seed=5)
    assert len(corrected.corrections) > 0
    await publish(url, corrected.publish, settings)
    await migrate(db_url)
    engine = make_engine(db_url)
    try:
        consumer = await consume(url, engine, settings, wrap=lambda h: FlakyAfterCommit(h, times=3))
        assert consumer.stats.failures == 3
        assert consumer.stats.dead_lettered == 0
        actual = await read_all(engine, settings, corrected.publish.days)
    finally:
        await engine.dispose()
    assert compare(actual, truth(corrected.expected)) == []
    counted = {key: figures["corrections"] for key, figures in actual.items()}
    assert counted == {key: corrected.corrections.get(key, 0) for key in actual}


async def test_corrected_rollups_are_exact_on_sqlite(
    nats_server: NatsServer, settings: AggregatorSettings
) -> None:
    await _exact(nats_server.url, settings.database_url(), settings)


async def test_corrected_rollups_are_exact_on_postgresql(
    nats_server: NatsServer, settings: AggregatorSettings, postgres_url: str
) -> None:
    await _exact(nats_server.url, postgres_url, settings)
