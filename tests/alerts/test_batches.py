"""A batch is applied set-wise: the same outcome as its events one by one, delivered at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, fever, published
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.tables import community_activity, daily_counts, isolations
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import PublishedEvent

PID = "c" * 32


def isolation(action: str, when: datetime) -> PublishedEvent:
    data = {"person": {"pid": PID}, "action": action, "kind": "home"}
    return published("isolation", data, when=when)


async def test_an_event_twice_in_one_batch_is_applied_once(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    case, hot = confirmed(), fever()
    await world.send(case, hot, case, hot)
    assert [(a.rule, a.occurrences) for a in await world.alerts()] == [("immediate_confirmed", 1)]
    async with engine.connect() as conn:
        counted = await conn.scalar(
            select(daily_counts.c.value).where(
                daily_counts.c.unit == COMMUNITY, daily_counts.c.metric == "fevers"
            )
        )
    assert counted == 1


async def test_isolations_and_activity_in_one_batch_follow_the_events_order(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    start = clock.now - timedelta(hours=6)
    checked = start + timedelta(hours=1)
    await world.send(isolation("start", start), isolation("check", checked))
    assert await _isolation(engine) == (checked, 1)
    # a late check older than the last one does not move it back; the end closes it
    later = checked + timedelta(hours=1)
    await world.send(isolation("check", later), isolation("check", start), isolation("end", later))
    assert await _isolation(engine) == (later, 0)
    await world.send(isolation("start", later + timedelta(hours=1)))
    assert await _isolation(engine) == (later + timedelta(hours=1), 1)
    async with engine.connect() as conn:
        last = await conn.scalar(select(community_activity.c.last_event_at))
    assert last == later + timedelta(hours=1), "the latest event, whatever the order"


async def _isolation(engine: AsyncEngine) -> tuple[datetime, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(isolations.c.last_check_at, isolations.c.active).where(
                    isolations.c.pid == PID
                )
            )
        ).one()
    return row.last_check_at, row.active


async def test_a_committed_alert_wakes_the_dispatcher(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    apply, dispatcher = world.apply, world.dispatcher
    running = asyncio.create_task(dispatcher.run(interval_s=3600))  # no timer tick in the test
    try:
        await apply([Delivery(confirmed(), "s", 1, 1)])
        await _pages(webhook, 1)
        # the first tick is over: only a wake-up can deliver the next one
        yesterday = clock.now - timedelta(days=1)
        await apply([Delivery(confirmed(pid="c" * 32, when=yesterday), "s", 2, 1)])
        await _pages(webhook, 2)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _pages(webhook: Receiver, count: int, timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(webhook.bodies("/community")) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{count} pages expected"
        await asyncio.sleep(0.05)
