"""Time-based alerts keep one identity while their condition holds, across midnight."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, fever, published
from tests.alerts.test_lifecycle import NO_ABERRATION, World, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts, notifications, silences
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.hierarchy import load_registry

SHANGHAI = ZoneInfo("Asia/Shanghai")


def watchdog(engine: AsyncEngine, clock: Clock, receiver: Receiver, rules: Rules) -> Watchdog:
    routing = Routing(oncall(receiver), load_registry(), "http://aggregator")
    return Watchdog(engine, lambda: rules, lambda: routing, "Asia/Shanghai", clock)


async def rows(engine: AsyncEngine, rule: str) -> list[tuple[str, str]]:
    """(window, state) of every alert of ``rule``, oldest first."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(alerts.c.window, alerts.c.state)
            .where(alerts.c.rule == rule)
            .order_by(alerts.c.id)
        )
        return [(w, s) for w, s in found]


def at_shanghai(days_ago: int, hour: int, clock: Clock) -> datetime:
    day = (clock.now.astimezone(SHANGHAI) - timedelta(days=days_ago)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def screening(when: datetime, community: str = COMMUNITY) -> Any:
    return published(
        "screening", {"temperature_c": 36.5, "site": "gate"}, when=when, community=community
    )


async def test_a_missing_report_stays_open_after_the_next_deadline_until_that_day_arrives(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(3, 10, clock)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    await world.send(screening(clock.now - timedelta(hours=30)))
    first_day = (clock.now.astimezone(SHANGHAI) - timedelta(days=1)).date()
    await dog.tick()
    clock.advance(days=1)
    await dog.tick()
    second_day = first_day + timedelta(days=1)
    assert await rows(engine, "missing_daily_report") == [
        (str(first_day), "firing"),
        (str(second_day), "firing"),
    ], "a later deadline passing does not make the earlier day reported"
    await world.send(
        published("daily_report", {"date": str(first_day), "zero": True}, when=clock.now)
    )
    await dog.tick()
    assert await rows(engine, "missing_daily_report") == [
        (str(first_day), "resolved"),
        (str(second_day), "firing"),
    ]


async def test_a_missed_isolation_check_is_one_alert_across_midnight(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(2, 23, clock)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    person = {"pid": "d" * 32}
    start = clock.now - timedelta(hours=25)
    await world.send(
        published("isolation", {"person": person, "action": "start", "kind": "home"}, when=start)
    )
    await dog.tick()
    clock.advance(hours=2)  # past midnight in Shanghai
    await dog.tick()
    assert [s for _w, s in await rows(engine, "missed_isolation_check")] == ["firing"]


def responding(units: list[str], start: datetime) -> Rules:
    return Rules.model_validate(
        {
            "aberration": {"methods": []},
            "silence": {
                "no_events_hours": 6,
                "response_periods": [{"start": start.isoformat(), "units": units}],
            },
        }
    )


async def test_no_events_alerts_only_inside_a_declared_response_period(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.advance(hours=-22)  # events may not lie in the (real) future
    world = World(engine, clock, webhook)
    declared = clock.now - timedelta(days=1)
    await world.send(screening(clock.now - timedelta(hours=7)))
    elsewhere = watchdog(engine, clock, webhook, responding(["640106002"], declared))
    await elsewhere.tick()
    assert await rows(engine, "no_events") == []
    here = watchdog(engine, clock, webhook, responding([COMMUNITY[:9]], declared))
    await here.tick()
    clock.advance(hours=20)  # still quiet, across midnight: still the same alert
    await here.tick()
    assert [s for _w, s in await rows(engine, "no_events")] == ["firing"]
    await world.send(screening(clock.now - timedelta(minutes=1)))
    await here.tick()
    assert [s for _w, s in await rows(engine, "no_events")] == ["resolved"]


async def _targets(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(notifications.c.reason, notifications.c.target)
            .join(alerts, alerts.c.id == notifications.c.alert_id)
            .where(notifications.c.channel == "webhook", alerts.c.rule == "immediate_confirmed")
            .order_by(notifications.c.id)
        )
        return [(r, t.rsplit("/", 1)[-1]) for r, t in found]


async def test_a_silence_made_after_firing_stops_escalation_until_it_expires(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    await world.send(
        published("case", {"person": {"pid": "e" * 32}, "classification": "confirmed"})
    )
    await world.dispatcher.tick()
    async with engine.begin() as conn:
        await conn.execute(
            silences.insert().values(
                matchers=json.dumps([{"name": "unit", "value": COMMUNITY, "is_regex": False}]),
                starts_at=clock.now,
                ends_at=clock.now + timedelta(minutes=20),
                created_by="t",
                comment="investigating on site",
            )
        )
    await dog.tick()
    clock.advance(minutes=10)  # past the street step of the critical policy
    await world.dispatcher.tick()
    assert [s for _w, s in await rows(engine, "immediate_confirmed")] == ["silenced"]
    assert await _targets(engine) == [("fired", "community")], "nobody else paged while silenced"
    clock.advance(minutes=11)
    await dog.tick()
    await world.dispatcher.tick()
    assert [s for _w, s in await rows(engine, "immediate_confirmed")] == ["firing"]
    assert [t for _r, t in await _targets(engine)] == ["community", "community"]
    paged = [b["groupLabels"]["alertname"] for b in webhook.bodies("/community")]
    assert paged.count("immediate_confirmed") == 2


@pytest.mark.parametrize(
    ("covers", "silenced"), [(COMMUNITY, False), (COMMUNITY[:9], False), (COMMUNITY[:6], True)]
)
async def test_a_confirmed_case_is_silenced_only_by_a_silence_of_a_district_or_more(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, covers: str, silenced: bool
) -> None:
    """A community's (or a street's) own month-long silence kept its confirmed cases from
    the district: a critical alert is silenced only by a silence covering a district; a
    warning (a fever cluster) by any."""
    world = World(engine, clock, webhook)
    async with engine.begin() as conn:
        await conn.execute(
            silences.insert().values(
                matchers=json.dumps([{"name": "unit", "value": COMMUNITY, "is_regex": False}]),
                units=json.dumps([covers]),
                starts_at=clock.now,
                ends_at=clock.now + timedelta(days=30),
                created_by="t",
                comment="busy",
            )
        )
    await world.send(
        published("case", {"person": {"pid": "9" * 32}, "classification": "confirmed"}),
        fever(),
        fever(),
        fever(),
    )
    states = {a.rule: a.state for a in await world.alerts()}
    assert states["immediate_confirmed"] == ("silenced" if silenced else "firing")
    assert states["fever_cluster"] == "silenced"


async def test_an_acknowledged_cluster_alert_resolves_itself_when_its_window_has_passed(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await world.send(fever(), fever(), fever())
    [cluster] = await world.alerts()
    async with engine.begin() as conn:
        await conn.execute(
            alerts.update().where(alerts.c.id == cluster.id).values(state="acknowledged")
        )
    await world.dispatcher.tick()
    assert [s for _w, s in await rows(engine, "fever_cluster")] == ["acknowledged"]
    clock.advance(days=3)
    await world.dispatcher.tick()
    assert [s for _w, s in await rows(engine, "fever_cluster")] == ["resolved"]


async def test_silence_is_not_judged_while_a_backlog_waits(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """After an outage the reports may still be in the queue: no missing-report page
    until the backlog is applied."""
    clock.now = at_shanghai(3, 10, clock)
    world = World(engine, clock, webhook)
    await world.send(screening(clock.now - timedelta(hours=30)))
    backlog = [True]

    async def caught_up() -> bool:
        return not backlog[0]

    routing = Routing(oncall(webhook), load_registry(), "http://aggregator")
    dog = Watchdog(
        engine, lambda: NO_ABERRATION, lambda: routing, "Asia/Shanghai", clock, caught_up
    )
    await dog.tick()
    assert await rows(engine, "missing_daily_report") == []
    backlog[0] = False
    await dog.tick()
    assert [state for _, state in await rows(engine, "missing_daily_report")] == ["firing"]
