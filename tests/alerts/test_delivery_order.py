"""Delivery order: a confirmed case is not paged after a burst of warnings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed, fever
from tests.alerts.test_lifecycle import NO_ABERRATION, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_shared.consumer import Delivery
from zhibao_shared.hierarchy import load_registry


async def no_nats(_subject: str, _body: bytes) -> None:
    return None


async def test_a_critical_alert_goes_out_in_the_first_pass_behind_a_backlog_of_warnings(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """More warnings are due than one pass sends (200); the confirmed case still goes first."""
    at_once = oncall(webhook).model_copy(update={"group_wait_seconds": 0})
    routing = Routing(at_once, load_registry(), "http://aggregator")
    apply = ApplyEvents(engine, lambda: NO_ABERRATION, lambda: routing, "Asia/Shanghai", clock)
    dispatcher = Dispatcher(engine, lambda: routing, no_nats, clock)
    fevers = [fever(building=str(b)) for b in range(250) for _ in range(3)]
    await apply([Delivery(event, "s", n, 1) for n, event in enumerate(fevers)])
    await apply([Delivery(confirmed(), "s", len(fevers), 1)])

    await dispatcher.tick()

    paged = [
        (body["groupLabels"]["alertname"], len(body["alerts"])) for _path, body in webhook.received
    ]
    assert ("immediate_confirmed", 1) in paged
    clusters = sum(n for name, n in paged if name == "fever_cluster")
    assert 0 < clusters < 250, "the warnings did not all fit one pass"
