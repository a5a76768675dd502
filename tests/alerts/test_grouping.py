"""Grouping: alerts of one unit and rule raised within group_wait go out as one message."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, fever
from tests.alerts.task_support import eventually
from tests.alerts.test_lifecycle import NO_ABERRATION, World, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import notifications
from zhibao_shared.consumer import Delivery
from zhibao_shared.hierarchy import load_registry


async def test_a_second_cluster_within_group_wait_joins_the_first_notification(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    waiting = oncall(webhook).model_copy(update={"group_wait_seconds": 10})
    routing = Routing(waiting, load_registry(), "http://aggregator")
    apply = ApplyEvents(engine, lambda: NO_ABERRATION, lambda: routing, "Asia/Shanghai", clock)

    async def no_nats(_subject: str, _body: bytes) -> None:
        return None

    dispatcher = Dispatcher(engine, lambda: routing, no_nats, clock)
    await apply([Delivery(fever(building="3"), "s", i, 1) for i in range(3)])
    clock.advance(seconds=4)
    assert await dispatcher.tick() == 0
    assert webhook.bodies("/community") == [], "held for the group wait"
    await apply([Delivery(fever(building="7"), "s", i, 1) for i in range(3)])
    clock.advance(seconds=6)
    await dispatcher.tick()
    [body] = webhook.bodies("/community")
    places = sorted(a["annotations"]["summary"].split(" at ")[1] for a in body["alerts"])
    assert [p.split(" in ")[0] for p in places] == ["枫林湾/3", "枫林湾/7"]
    clock.advance(minutes=1)
    await dispatcher.tick()
    assert len(webhook.bodies("/community")) == 1, "nothing left to send separately"


async def test_a_new_cluster_is_not_held_behind_a_page_of_its_group_being_sent(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The first cluster's page is in flight (its receiver slow to answer) when a second
    cluster of the same community opens: the second goes out at once, while the first is
    still being answered, not when the first page's two-minute lease runs out."""
    world = World(engine, clock, webhook)
    await world.send(*(fever(building="3") for _ in range(3)))
    webhook.release.clear()
    sending = asyncio.create_task(world.dispatcher.deliver())
    assert await asyncio.to_thread(webhook.arrived.wait, 30), "the first page went out"
    await world.send(*(fever(building="7") for _ in range(3)))  # its commit wakes a pass
    await eventually("the second page", lambda: len(webhook.keys), lambda sent: sent == 2)
    webhook.release.set()
    await sending
    await eventually("both pages recorded sent", lambda: _pending(engine), lambda n: n == 0)
    places = sorted(
        a["annotations"]["summary"].split(" at ")[1].split(" in ")[0]
        for body in webhook.bodies("/community")
        for a in body["alerts"]
    )
    assert places == ["枫林湾/3", "枫林湾/7"]


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(notifications.c.status == "pending")
        return int((await conn.execute(query)).scalar_one())
