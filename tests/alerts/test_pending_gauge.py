"""Operators see notifications that have not gone out (how many, and since when the oldest
waits, per channel) and whether the dispatcher still passes: a receiver down, a robot's
backlog or a stuck dispatcher shows on /metrics."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed
from tests.alerts.test_delivery_order import until
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.tables import notifications


def _pending(channel: str) -> float | None:
    return REGISTRY.get_sample_value("zhibao_alerts_notifications_pending", {"channel": channel})


def _oldest(channel: str) -> float | None:
    return REGISTRY.get_sample_value(
        "zhibao_alerts_notification_oldest_pending_timestamp_seconds", {"channel": channel}
    )


async def _webhook_rows(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        query = select(notifications.c.id).where(notifications.c.channel == "webhook")
        return list((await conn.execute(query.order_by(notifications.c.id))).scalars())


async def test_notifications_a_receiver_refuses_show_as_pending_until_they_go_out(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    queued_at = clock.now
    webhook.status = 500
    await world.send(confirmed(), confirmed(pid="c" * 32))
    await world.dispatcher.tick()
    assert _pending("webhook") == 2, "two cases, one receiver answering 500"
    assert _oldest("webhook") == queued_at.timestamp()

    clock.advance(seconds=40)
    webhook.status = 503
    await world.dispatcher.tick()  # retried, refused again
    assert _pending("webhook") == 2
    assert _oldest("webhook") == queued_at.timestamp(), "a retry does not make it younger"

    webhook.status = 200
    clock.advance(seconds=5)  # the next retry is due; the gauges' 30 s have not passed
    await world.dispatcher.tick()
    assert _pending("webhook") is None and _oldest("webhook") is None, "all delivered"
    (message,) = webhook.bodies("/community")  # both cases in one grouped message
    assert len(message["alerts"]) == 2


async def test_a_pass_that_changed_nothing_refreshes_the_gauges_every_30_s(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Another instance delivered one of the notifications: this one's gauges show it
    within 30 s, not at every pass (an idle pass reads as little as it can)."""
    world = World(engine, clock, webhook)
    webhook.status = 500
    await world.send(confirmed(), confirmed(pid="c" * 32))
    await world.dispatcher.tick()
    first, second = await _webhook_rows(engine)
    async with engine.begin() as conn:  # as another instance would leave them
        await conn.execute(
            notifications.update().where(notifications.c.id == first).values(status="sent")
        )
        await conn.execute(
            notifications.update()
            .where(notifications.c.id == second)
            .values(next_attempt_at=clock.now + timedelta(minutes=1))
        )
    clock.advance(seconds=10)
    await world.dispatcher.tick()
    assert _pending("webhook") == 2, "refreshed by a pass that changed nothing"
    clock.advance(seconds=25)
    await world.dispatcher.tick()
    assert _pending("webhook") == 1


async def test_the_dispatcher_s_heartbeat_is_each_pass_it_completes(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A dispatcher that stops passing (stuck, failing) shows as a heartbeat that ages."""
    world = World(engine, clock, webhook)
    running = asyncio.create_task(world.dispatcher.run(interval_s=0.05))
    try:
        for _ in range(3):
            clock.advance(seconds=7)
            await until(lambda: _last_pass() == clock.now.timestamp())
    finally:
        world.dispatcher.stop()
        with suppress(asyncio.CancelledError):
            await running


async def test_a_failing_pass_does_not_beat_and_a_failing_refresh_does_not_fail_the_pass(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(engine, clock, webhook)
    dispatcher = world.dispatcher
    webhook.status = 500
    await world.send(confirmed())
    await dispatcher.tick()
    assert _pending("webhook") == 1
    refresh = dispatcher._gauged_figures

    async def unavailable() -> Any:
        raise OSError("database unavailable")

    monkeypatch.setattr(dispatcher, "_gauged_figures", unavailable)
    await world.send(confirmed(pid="c" * 32))
    await dispatcher.tick()  # delivered (refused), then the gauges could not be read
    assert _pending("webhook") == 1
    monkeypatch.setattr(dispatcher, "_gauged_figures", refresh)
    clock.advance(seconds=1)  # a pass that changes nothing, within 30 s: as the last failed
    await dispatcher.tick()
    assert _pending("webhook") == 2

    monkeypatch.setattr(dispatcher, "deliver", unavailable)
    beat = _last_pass()
    running = asyncio.create_task(dispatcher.run(interval_s=0.05))
    try:
        for _ in range(3):
            clock.advance(seconds=7)
            await asyncio.sleep(0.3)  # several passes' pauses: each pass fails
        assert _last_pass() == beat, "a failing pass counted as a pass"
    finally:
        dispatcher.stop()
        with suppress(asyncio.CancelledError):
            await running


def _last_pass() -> float | None:
    return REGISTRY.get_sample_value("zhibao_alerts_dispatcher_last_pass_timestamp_seconds")
