"""A rebuild's processes replay one durable consumer together into one database: each
holds its own counter changes and writes them at its end, and every figure is exact.

``zhibao aggregator rebuild`` runs ``aggregator_rebuild_processes`` of these shares (the
command and helper processes); here two shares run at once in this process, each with
its own engine and NATS connection, so both surely take part.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import publish, read_all
from zhibao_aggregator.bootstrap import replay_share
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.replay import replay_engine
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration


async def _share(url: str, settings: AggregatorSettings) -> int:
    client = await nats.connect(url)
    engine = replay_engine(settings.database_url())
    try:
        return await replay_share(settings, client.jetstream(), engine)
    finally:
        await client.close()
        await engine.dispose()


@pytest.mark.parametrize("held_keys", [1_000_000, 40], ids=["held to the end", "written often"])
async def test_two_shares_of_a_rebuild_count_every_event_once(
    nats_server: NatsServer, settings: AggregatorSettings, database: str, held_keys: int
) -> None:
    scenario = generate(seed=20211106)
    configured = settings.model_copy(
        update={
            "aggregator_database_url": database,
            "nats_url": nats_server.url,
            "aggregator_rebuild_held_keys": held_keys,
            "aggregator_rebuild_batch_size": 8,  # many batches: the shares interleave
        }
    )
    await publish(nats_server.url, scenario, configured)
    await migrate(database)
    shares = await asyncio.gather(
        _share(nats_server.url, configured), _share(nats_server.url, configured)
    )
    assert all(share > 0 for share in shares), f"both shares took part: {shares}"
    assert sum(shares) == len(scenario.publish)
    engine = make_engine(database)
    try:
        actual = await read_all(engine, configured, scenario.days)
    finally:
        await engine.dispose()
    assert compare(actual, truth(scenario)) == []
