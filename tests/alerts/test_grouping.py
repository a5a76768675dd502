"""Grouping: alerts of one unit and rule raised within group_wait go out as one message."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, fever
from tests.alerts.test_lifecycle import NO_ABERRATION, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
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
