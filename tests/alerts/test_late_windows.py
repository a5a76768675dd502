"""Late data for a window that has passed counts on that window's alert: paged once.

Found by the fault-injection suite (tests/faults): applying a backlog of past
days (after an outage, or a community sending yesterday's sheet late) raised a
new cluster or EARS alert — and a new page — for every batch, because the
previous alert of the same window had resolved itself in between.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, fever
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import PublishedEvent
from zhibao_shared.hierarchy import load_registry

CLUSTER_ONLY = Rules.model_validate({"aberration": {"methods": []}})


class Paging:
    """The alerts handler and dispatcher, paging one catch-all webhook."""

    def __init__(self, engine: AsyncEngine, clock: Clock, receiver: Receiver) -> None:
        oncall = OnCall.model_validate({"webhooks": [f"{receiver.url}/page"]})
        routing = Routing(oncall, load_registry(), "http://aggregator")
        self.engine = engine
        self.apply = ApplyEvents(
            engine, lambda: CLUSTER_ONLY, lambda: routing, "Asia/Shanghai", clock
        )

        async def no_nats(_subject: str, _body: bytes) -> None:
            return None

        self.dispatcher = Dispatcher(engine, lambda: routing, no_nats, clock)

    async def send(self, *events: PublishedEvent) -> None:
        await self.apply([Delivery(e, "s", i, 1) for i, e in enumerate(events)])

    async def clusters(self) -> list[Any]:
        async with self.engine.connect() as conn:
            query = select(alerts).where(alerts.c.rule == "fever_cluster").order_by(alerts.c.id)
            return list((await conn.execute(query)).all())


async def test_more_fevers_of_a_past_day_do_not_page_its_cluster_again(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    paging = Paging(engine, clock, webhook)
    day = clock.now - timedelta(days=3)
    await paging.send(*(fever(when=day + timedelta(minutes=n)) for n in range(3)))
    await paging.dispatcher.tick()  # pages it, and resolves it: its window has passed
    [first] = await paging.clusters()
    assert first.state == "resolved"
    await paging.send(fever(when=day + timedelta(minutes=10)))  # the backlog goes on
    await paging.send(fever(when=day + timedelta(minutes=20)))
    await paging.dispatcher.tick()
    [cluster] = await paging.clusters()
    assert (cluster.id, cluster.occurrences) == (first.id, 3)
    assert len(webhook.bodies("/page")) == 1, "one page for one building's cluster that day"


async def test_a_cluster_of_today_after_it_was_resolved_still_opens_a_new_alert(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    paging = Paging(engine, clock, webhook)
    await paging.send(*(fever(when=clock.now - timedelta(minutes=n + 1)) for n in range(3)))
    async with engine.begin() as conn:
        await conn.execute(alerts.update().values(state="resolved"))
    await paging.send(fever(when=clock.now - timedelta(seconds=30)))
    assert [a.state for a in await paging.clusters()] == ["resolved", "firing"]
    assert COMMUNITY in {a.unit for a in await paging.clusters()}
