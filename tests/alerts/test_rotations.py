"""Several people per level, and rotations that hand over at a local time of day.

The handover moment is tested exactly, on the service's injected clock: a page just
before it goes to the outgoing person, one at the moment itself to the incoming one.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import OnCall

SHANGHAI = ZoneInfo("Asia/Shanghai")
JUST = timedelta(microseconds=1)


def rota(*rotations: dict[str, Any], **extra: Any) -> OnCall:
    """An on-call configuration with these rotations."""
    return OnCall.model_validate({"rotations": list(rotations), **extra})


def grid_workers(shift: str = "daily", **extra: Any) -> dict[str, Any]:
    """The community's grid workers taking turns, handing over at 08:00."""
    return {
        "unit": COMMUNITY,
        "shift": shift,
        "start": "2026-03-01",
        "handover": "08:00",
        "people": [{"name": "张敏", "role": "网格员"}, {"name": "赵磊", "role": "网格员"}],
        **extra,
    }


def on_call(config: OnCall, at: datetime) -> list[str]:
    return [person.label for person in config.people_for(COMMUNITY, at)]


def local(text: str, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_a_daily_rotation_hands_over_at_its_local_time_to_the_microsecond() -> None:
    config = rota(grid_workers())
    handover = local("2026-03-02T08:00:00")
    assert on_call(config, handover - JUST) == ["张敏 (网格员)"]
    assert on_call(config, handover) == ["赵磊 (网格员)"]
    assert on_call(config, handover + timedelta(days=1) - JUST) == ["赵磊 (网格员)"]
    assert on_call(config, handover + timedelta(days=1)) == ["张敏 (网格员)"]
    assert on_call(config, local("2026-02-01T12:00:00")) == ["张敏 (网格员)"], "before the start"


def test_a_weekly_rotation_hands_over_on_the_weekday_of_its_start() -> None:
    config = rota(grid_workers("weekly"))
    handover = local("2026-03-08T08:00:00")  # a week after 2026-03-01 08:00
    assert on_call(config, handover - JUST) == ["张敏 (网格员)"]
    assert on_call(config, handover) == ["赵磊 (网格员)"]


def test_the_handover_stays_at_the_local_time_when_the_offset_changes() -> None:
    """In a zone with summer time, 08:00 is 07:00 UTC before the change, 06:00 after."""
    berlin = ZoneInfo("Europe/Berlin")
    config = rota(grid_workers(), timezone="Europe/Berlin")
    winter = datetime(2026, 3, 28, 7, 0, tzinfo=UTC)  # 08:00 CET
    summer = datetime(2026, 3, 30, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert winter == local("2026-03-28T08:00:00", berlin)
    assert on_call(config, winter - JUST) != on_call(config, winter)
    assert on_call(config, summer - JUST) != on_call(config, summer)
    assert on_call(config, summer - timedelta(hours=1)) == on_call(config, summer - JUST)


def test_a_start_with_an_offset_hands_over_at_its_time_of_day() -> None:
    """The files written before handover times: 08:00+08:00 is the handover time."""
    config = rota({**grid_workers(), "start": "2026-03-01T08:00:00+08:00", "handover": None})
    handover = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert on_call(config, handover - JUST) == ["张敏 (网格员)"]
    assert on_call(config, handover) == ["赵磊 (网格员)"]


def test_the_cloud_seal_pages_the_grid_worker_secretary_and_director_together() -> None:
    config = rota(
        grid_workers(),
        {
            "unit": COMMUNITY,
            "shift": "always",
            "people": [{"name": "王芳", "role": "社区书记"}, {"name": "李强", "role": "社区主任"}],
        },
    )
    at = local("2026-03-02T03:00:00")
    assert on_call(config, at) == ["张敏 (网格员)", "王芳 (社区书记)", "李强 (社区主任)"]
    assert [p.label for p in config.people_for(COMMUNITY[:9] + "099", at)] == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"start": None}, "needs a start"),
        ({"shift": "hourly"}, "shift"),
        ({"handover": "25:00"}, "handover"),
        ({"handover": "08:00+08:00"}, "without an offset"),
    ],
)
def test_a_rotation_that_cannot_say_who_is_on_shift_is_refused(
    change: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        rota({**grid_workers(), **change})


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        rota(grid_workers(), timezone="Asia/Beijing")


def people(receiver: Receiver) -> OnCall:
    """The cloud seal, each person on their own receiver path; reminded every 10 minutes."""
    return rota(
        {
            **grid_workers(),
            "people": [
                {"name": "张敏", "role": "网格员", "webhook": f"{receiver.url}/grid-outgoing"},
                {"name": "赵磊", "role": "网格员", "webhook": f"{receiver.url}/grid-incoming"},
            ],
        },
        {
            "unit": COMMUNITY,
            "shift": "always",
            "people": [
                {"name": "王芳", "role": "社区书记", "webhook": f"{receiver.url}/secretary"},
                {"name": "李强", "role": "社区主任", "webhook": f"{receiver.url}/director"},
            ],
        },
        escalation={
            "critical": {
                "steps": [{"level": "community", "after_minutes": 0}],
                "repeat_minutes": 10,
            }
        },
    )


class Pages:
    """Who was paged since the last look."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._seen = 0

    def since_last(self) -> Counter[str]:
        received = self._receiver.received[self._seen :]
        self._seen = len(self._receiver.received)
        return Counter(path for path, _body in received)


async def test_pages_just_before_and_at_the_handover_reach_the_outgoing_and_incoming_person(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook, rota=people(webhook))
    pages = Pages(webhook)
    handover = local("2026-03-02T08:00:00").astimezone(UTC)
    seal = {"/secretary": 1, "/director": 1}

    clock.now = handover - timedelta(minutes=5)
    await world.send(confirmed(pid="a" * 32))
    await world.dispatcher.tick()
    assert pages.since_last() == Counter({"/grid-outgoing": 1, **seal})

    clock.now = handover - JUST
    await world.send(confirmed(pid="b" * 32))
    await world.dispatcher.tick()
    assert pages.since_last() == Counter({"/grid-outgoing": 1, **seal}), "just before"

    clock.now = handover
    await world.send(confirmed(pid="c" * 32))
    await world.dispatcher.tick()
    assert pages.since_last() == Counter({"/grid-incoming": 1, **seal}), "at the handover"

    clock.now = handover + timedelta(minutes=5)  # the first alert's reminder is due
    await world.dispatcher.tick()
    reminded = pages.since_last()
    assert reminded == Counter({"/grid-incoming": 1, **seal}), "the outgoing is off duty"
    assert [a.occurrences for a in await world.alerts()] == [1, 1, 1]
