"""Chat robots get their due alerts together, within their size and rate limits.

Twenty communities' alerts due at once reach the district's DingTalk and WeCom robots
(a real HTTP server on loopback standing in for both) as one or a few messages each,
every alert exactly once; over a robot's messages a minute, the rest waits for the
next minute on the injected clock rather than being dropped.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import OnCall
from zhibao_alerts.domain.robot_batches import (
    MESSAGE_BYTES,
    ROBOT_CHANNELS,
    WINDOW,
    RateWindow,
    pack,
)
from zhibao_alerts.tables import notifications
from zhibao_shared.hierarchy import load_registry

DISTRICT = "640106"
COMMUNITIES = [unit.code for unit in load_registry().communities_under(DISTRICT)][:20]
UNIT = re.compile(r"单元 unit: (\d{12}) ")


def district_robots(receiver: Receiver, wecom_per_minute: int | None = None) -> OnCall:
    """The district's duty officer, reached on a DingTalk and a WeCom group robot; nobody
    below, so every community's alert reaches the district's robots."""
    wecom: dict[str, Any] = {"url": f"{receiver.url}/wecom?key=k"}
    if wecom_per_minute is not None:
        wecom["per_minute"] = wecom_per_minute
    return OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": DISTRICT,
                    "shift": "always",
                    "people": [
                        {
                            "name": "金凤区疾控值班员",
                            "dingtalk": {"url": f"{receiver.url}/ding?access_token=t"},
                            "wecom": wecom,
                        }
                    ],
                }
            ]
        }
    )


def texts(receiver: Receiver, robot: str) -> list[str]:
    """The texts of the messages one robot received, in order."""
    found = []
    for path, body in receiver.received:
        if path.startswith(f"/{robot}?"):
            markdown = body["markdown"]
            found.append(markdown["text"] if robot == "ding" else markdown["content"])
    return found


def units_in(messages: list[str]) -> Counter[str]:
    """How often each unit's alert appears across the messages."""
    return Counter(code for text in messages for code in UNIT.findall(text))


async def twenty_communities_report_a_confirmed_case(world: World) -> None:
    await world.send(
        *(confirmed(pid=f"{n:032x}", community=code) for n, code in enumerate(COMMUNITIES))
    )


async def statuses(engine: AsyncEngine, channel: str) -> Counter[str]:
    async with engine.connect() as conn:
        query = select(notifications.c.status).where(notifications.c.channel == channel)
        return Counter((await conn.execute(query)).scalars())


async def test_twenty_communities_alerts_reach_a_district_robot_as_few_messages(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook, rota=district_robots(webhook))
    await twenty_communities_report_a_confirmed_case(world)
    await world.dispatcher.tick()

    ding, wecom = texts(webhook, "ding"), texts(webhook, "wecom")
    assert len(ding) == 1, "DingTalk takes all twenty in one message"
    assert 1 < len(wecom) <= 3, "WeCom's 4096-byte limit splits them into a few"
    assert all(len(text.encode()) <= MESSAGE_BYTES["wecom"] for text in wecom)
    expected = Counter(COMMUNITIES)
    assert units_in(ding) == expected and units_in(wecom) == expected, "each alert once"
    # the two robots are sent to concurrently: find DingTalk's message, not the first one
    [ding_message] = [body for path, body in webhook.received if path.startswith("/ding?")]
    assert ding_message["markdown"]["title"].startswith("20 条预警")
    assert await statuses(engine, "dingtalk") == Counter({"sent": 20})
    assert await statuses(engine, "wecom") == Counter({"sent": 20})
    assert await world.dispatcher.tick() == 0, "nothing left to send"


async def test_over_the_robots_rate_the_rest_waits_for_the_next_minute(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook, rota=district_robots(webhook, wecom_per_minute=1))
    await twenty_communities_report_a_confirmed_case(world)
    await world.dispatcher.tick()
    assert len(texts(webhook, "wecom")) == 1, "one message a minute"
    assert len(texts(webhook, "ding")) == 1, "the other robot has its own limit"
    waiting = await statuses(engine, "wecom")
    assert waiting["sent"] < 20 and waiting["sent"] + waiting["pending"] == 20

    clock.advance(seconds=59)
    await world.dispatcher.tick()
    assert len(texts(webhook, "wecom")) == 1, "still within the minute"

    for _minute in range(3):
        clock.advance(seconds=60)
        await world.dispatcher.tick()
    wecom = texts(webhook, "wecom")
    assert 1 < len(wecom) <= 3
    assert units_in(wecom) == Counter(COMMUNITIES), "none dropped, none twice"
    assert await statuses(engine, "wecom") == Counter({"sent": 20})
    assert len(webhook.keys) == len(webhook.received), "every request was accepted"


def test_alerts_are_packed_in_order_within_the_size_limit() -> None:
    assert pack([10, 10, 10, 10, 10], 30) == [[0, 1], [2, 3], [4]]
    assert pack([5, 100, 5], 30) == [[0], [1], [2]], "an oversized alert goes alone"
    assert pack([], 30) == []


def test_the_rate_window_slides() -> None:
    window, now = RateWindow(), Clock().now
    assert window.room("r", 2, now) == 2
    window.take("r", 2, now)
    assert window.room("r", 2, now) == 0
    later = window.next_room("r", 2, now)
    assert (later - now).total_seconds() == 60
    assert window.room("r", 2, later) == 2


async def test_robot_messages_held_at_a_stop_wait_a_rate_window(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Stopped while its first message waits on the receiver, the dispatcher hands back
    the robots' messages it had not started for after a whole rate window: the next
    instance cannot know how many this one sent them within the minute."""
    world = World(engine, clock, webhook, rota=district_robots(webhook))
    one_at_a_time = world.another_dispatcher(concurrency=1)
    await twenty_communities_report_a_confirmed_case(world)
    webhook.release.clear()
    running = asyncio.create_task(one_at_a_time.run())
    assert await asyncio.to_thread(webhook.arrived.wait, 10)

    one_at_a_time.stop()
    webhook.release.set()
    await asyncio.wait_for(running, 10)
    async with engine.connect() as conn:
        held = (
            await conn.execute(
                select(notifications.c.channel, notifications.c.next_attempt_at).where(
                    notifications.c.status == "pending"
                )
            )
        ).all()
    by_robots = {at for channel, at in held if channel in ROBOT_CHANNELS}
    assert by_robots == {clock() + WINDOW}, "every robot message not sent waits the window"
