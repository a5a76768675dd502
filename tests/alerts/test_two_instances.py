"""Two alerts instances on one database (a rolling update, or district partitions
sharing a PostgreSQL database) never raise or page an alert twice.

Both apply events at the same time (the fevers of one cluster split between them, the
same confirmed person reported to both) and both dispatch at the same time; the
on-call receiver gets each alert once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import nats
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, published
from tests.alerts.test_lifecycle import World
from tests.alerts.test_watchdog import watchdog
from tests.support.postgres import both_backends
from tests.support.webhook import Receiver
from zhibao_alerts.bootstrap import consumer_spec
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.tables import community_watch
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchConsumer, Delivery
from zhibao_shared.db import make_engine, run_migrations
from zhibao_shared.events import PublishedEvent, published_payload
from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM

pytestmark = pytest.mark.integration


database = both_backends("alerts")


@asynccontextmanager
async def two_engines(url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two instances' engines on one migrated database."""
    await run_migrations(url, "zhibao_alerts")
    first, second = make_engine(url), make_engine(url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@pytest.fixture
async def engines(database: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with two_engines(database) as pair:
        yield pair


@pytest.fixture
async def pg_engines(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """PostgreSQL only: the test watches PostgreSQL's lock waits."""
    async with two_engines(postgres_url) as pair:
        yield pair


class Instance(World):
    """A World whose batches are retried as the consumer redelivers them when a row the
    other instance inserted first makes the transaction fail (IntegrityError is one of
    the alerts consumer's transient errors)."""

    async def send(self, *events: PublishedEvent) -> None:
        for _attempt in range(5):
            try:
                await super().send(*events)
                return
            except IntegrityError:
                await asyncio.sleep(0.05)
        raise AssertionError("a batch kept conflicting")


def fever(n: int, building: str) -> PublishedEvent:
    data = {
        "temperature_c": 38.4,
        "site": "household",
        "compound": "枫林湾",
        "building": building,
        "person": {"pid": f"f{n:031x}"},
    }
    return published("screening", data)


async def test_two_instances_raise_and_page_every_alert_once(
    engines: tuple[AsyncEngine, AsyncEngine], clock: Clock, webhook: Receiver
) -> None:
    one, two = Instance(engines[0], clock, webhook), Instance(engines[1], clock, webhook)
    for round_ in range(3):
        building = f"{round_}"
        same_person = f"{round_ + 1:08x}" + "0" * 24
        await asyncio.gather(
            one.send(fever(3 * round_, building), confirmed(same_person)),
            two.send(fever(3 * round_ + 1, building), confirmed(same_person)),
        )
        await asyncio.gather(one.send(fever(3 * round_ + 2, building)), two.send())
    for _ in range(3):
        await asyncio.gather(one.dispatcher.tick(), two.dispatcher.tick())

    raised = Counter((a.rule, a.window) for a in await one.alerts())
    clusters = sum(n for (rule, _), n in raised.items() if rule == "fever_cluster")
    assert clusters == 3, raised
    assert sum(n for (rule, _), n in raised.items() if rule == "immediate_confirmed") == 3
    assert all(n == 1 for n in raised.values()), raised
    paged = Counter(
        alert["fingerprint"] for body in webhook.bodies("/community") for alert in body["alerts"]
    )
    assert len(paged) == 6
    assert all(n == 1 for n in paged.values()), paged


async def test_an_alerts_partition_consumes_only_its_districts(nats_server: NatsServer) -> None:
    """ZHIBAO_ALERTS_DISTRICTS limits an instance's consumer to its districts, as for the
    aggregator: partitions share one database and together see every event once."""
    seen: dict[str, list[str]] = {"640106": [], "640104": []}
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(AlertsSettings(_env_file=None)))
        for subject in (
            "zhibao.events.640106.640106001001.case",
            "zhibao.events.640104.640104001001.case",
        ):
            payload = published_payload(confirmed(community=subject.split(".")[3]))
            await js.publish(subject, payload, stream=EVENTS_STREAM)
        for district, subjects in seen.items():

            async def handler(batch: Sequence[Delivery], sink: list[str] = subjects) -> None:
                sink.extend(d.subject for d in batch)

            settings = AlertsSettings(
                alerts_districts=[district], alerts_durable=f"alerts-{district}", _env_file=None
            )
            consumer = BatchConsumer(js, consumer_spec(settings), handler, settings)
            await consumer.start()
            await asyncio.wait_for(consumer.run_until_caught_up(), 20)
    finally:
        await client.close()
    assert seen == {
        "640106": ["zhibao.events.640106.640106001001.case"],
        "640104": ["zhibao.events.640104.640104001001.case"],
    }


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return bool(waiting)


async def test_two_watchdogs_first_watching_a_community_at_once_both_complete_their_pass(
    pg_engines: tuple[AsyncEngine, AsyncEngine], clock: Clock
) -> None:
    """Both instances' watchdogs see a new deployment's communities for the first time in
    the same moment: the pass that comes second must not fail on the rows the first one
    stored (it did: a duplicate key in community_watch, the whole pass lost)."""
    first, second = pg_engines
    other_since = clock.now
    clock.advance(seconds=1)
    async with first.begin() as other_pass:  # the other instance's pass, not committed yet
        await other_pass.execute(
            community_watch.insert().values(community=COMMUNITY, since=other_since)
        )
        this_pass = asyncio.create_task(watchdog(second, clock).tick())
        for _ in range(200):  # until this pass waits for the other's row
            if this_pass.done() or await _waiting_on_a_lock(first):
                break
            await asyncio.sleep(0.05)
        assert not this_pass.done(), "this pass should wait for the other instance's commit"
    await this_pass
    communities = len(load_registry().at_level(Level.COMMUNITY))
    async with second.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(community_watch)) == communities
        since = await conn.scalar(
            select(community_watch.c.since).where(community_watch.c.community == COMMUNITY)
        )
    assert since == other_since, "the instance that watched it first decides since when"
