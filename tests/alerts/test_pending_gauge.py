"""Operators see notifications that have not gone out: how many, and how long the oldest
has waited, per channel (a receiver down, a dispatcher stuck)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver


def _sample(name: str, channel: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"channel": channel})


def _pending(channel: str) -> float | None:
    return _sample("zhibao_alerts_notifications_pending", channel)


def _oldest(channel: str) -> float | None:
    return _sample("zhibao_alerts_notification_oldest_pending_seconds", channel)


async def test_a_failing_receiver_s_notifications_show_as_pending_until_they_go_out(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    webhook.status = 500
    await world.send(confirmed(), confirmed(pid="c" * 32))
    await world.dispatcher.tick()
    assert _pending("webhook") == 2, "two cases, one receiver answering 500"
    assert _oldest("webhook") == 0

    clock.advance(seconds=40)
    webhook.status = 503
    await world.dispatcher.tick()  # retried, failed again
    assert _pending("webhook") == 2
    assert _oldest("webhook") == 40

    webhook.status = 200
    clock.advance(seconds=5)  # the next retry is due; the gauges' 30 s have not passed
    await world.dispatcher.tick()
    assert _pending("webhook") is None and _oldest("webhook") is None, "all delivered"
    (message,) = webhook.bodies("/community")  # both cases in one grouped message
    assert len(message["alerts"]) == 2
