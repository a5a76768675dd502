"""Time-based rules: a silent community, a missed isolation check; both clear themselves."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, published
from tests.alerts.test_lifecycle import NO_ABERRATION, World, oncall
from tests.support.webhook import Receiver
from zhibao_alerts import store
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts, silences, unit_first_days
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.events import PublishedEvent
from zhibao_shared.hierarchy import load_registry

SHANGHAI = ZoneInfo("Asia/Shanghai")


def watchdog(engine: AsyncEngine, clock: Clock) -> Watchdog:
    routing = Routing(oncall(Receiver("http://127.0.0.1:9")), load_registry(), "http://aggregator")
    return Watchdog(engine, lambda: NO_ABERRATION, lambda: routing, "Asia/Shanghai", clock)


def ten_local(clock: Clock, days_ago: int) -> date:
    """Set the clock to 10:00 in Shanghai ``days_ago`` days back (the day before's report
    was due at 09:00); returns that day."""
    day = (clock.now.astimezone(SHANGHAI) - timedelta(days=days_ago)).date()
    clock.now = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
    return day


def sent_just_now(clock: Clock) -> PublishedEvent:
    """A screening from five minutes ago."""
    screening = {"temperature_c": 36.5, "site": "gate"}
    return published("screening", screening, when=clock.now - timedelta(minutes=5))


async def open_rules(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(alerts.c.rule, alerts.c.unit, alerts.c.state).order_by(alerts.c.id)
        )
        return [tuple(r) for r in rows]


async def silence_community(engine: AsyncEngine, started: datetime, clock: Clock) -> None:
    """A silence of ``COMMUNITY`` from ``started`` until 30 minutes after the clock."""
    async with engine.begin() as conn:
        await conn.execute(
            silences.insert().values(
                matchers=json.dumps([{"name": "community", "value": COMMUNITY, "is_regex": False}]),
                starts_at=started,
                ends_at=clock.now + timedelta(minutes=30),
                created_by="t",
                comment="c",
            )
        )


async def test_an_active_community_without_its_daily_report_is_flagged_until_it_reports(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    # 10:00 in Shanghai (on a day already past): the previous day's report was due at 09:00.
    day = ten_local(clock, days_ago=1)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock)
    yesterday = str(day - timedelta(days=1))
    await world.send(
        published(
            "screening",
            {"temperature_c": 36.5, "site": "gate"},
            when=clock.now - timedelta(hours=30),
        )
    )
    await dog.tick()
    assert await open_rules(engine) == [("missing_daily_report", COMMUNITY, "firing")]
    await dog.tick()
    assert len(await open_rules(engine)) == 1, "still one alert while the condition holds"
    await world.send(
        published(
            "daily_report", {"date": yesterday, "zero": True}, when=clock.now - timedelta(minutes=1)
        )
    )
    await dog.tick()
    assert await open_rules(engine) == [("missing_daily_report", COMMUNITY, "resolved")]


async def test_a_community_is_not_asked_for_a_day_before_its_first_data(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A new deployment: communities start sending at 10:00, after the previous day's
    deadline (09:00). Nobody is paged for that day; the first day they sent on is asked."""
    ten_local(clock, days_ago=2)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock)
    await world.send(sent_just_now(clock))
    await dog.tick()
    assert await open_rules(engine) == [], "paged for the day before it sent anything"

    clock.advance(days=1)  # 10:00 the next day: the first day's deadline has passed
    await dog.tick()
    assert await open_rules(engine) == [("missing_daily_report", COMMUNITY, "firing")]


async def test_a_community_whose_first_day_is_unknown_is_asked(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Data from before first days were kept: asked as before, not let off."""
    ten_local(clock, days_ago=2)
    world = World(engine, clock, webhook)
    await world.send(sent_just_now(clock))
    async with engine.begin() as conn:
        await conn.execute(delete(unit_first_days))
    await watchdog(engine, clock).tick()
    assert await open_rules(engine) == [("missing_daily_report", COMMUNITY, "firing")]


async def test_a_missed_isolation_check_alerts_and_clears_when_checked(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    real_now = clock.now
    clock.now = real_now - timedelta(hours=23)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock)
    person = {"pid": "d" * 32}
    start = clock.now - timedelta(hours=2)
    today = real_now.astimezone(SHANGHAI).date()
    reports = [  # every recent day closed, so only the isolation rule can fire
        published(
            "daily_report", {"date": str(today - timedelta(days=n)), "zero": True}, when=start
        )
        for n in range(4)
    ]
    await world.send(
        published("isolation", {"person": person, "action": "start", "kind": "home"}, when=start),
        *reports,
    )
    await dog.tick()
    assert await open_rules(engine) == []
    clock.now = real_now
    await dog.tick()
    assert await open_rules(engine) == [("missed_isolation_check", COMMUNITY, "firing")]
    await world.send(
        published(
            "isolation",
            {"person": person, "action": "check", "kind": "home", "temperature_c": 36.4},
            when=real_now - timedelta(minutes=1),
        )
    )
    await dog.tick()
    assert await open_rules(engine) == [("missed_isolation_check", COMMUNITY, "resolved")]


async def test_an_expired_silence_lets_the_alert_fire(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock)
    await silence_community(engine, started=clock.now - timedelta(minutes=1), clock=clock)
    await world.send(
        published("case", {"person": {"pid": "e" * 32}, "classification": "confirmed"})
    )
    assert [r[2] for r in await open_rules(engine)] == ["silenced"]
    clock.advance(minutes=31)
    await dog.tick()
    assert [r[2] for r in await open_rules(engine)][-1] == "firing"


async def test_a_condition_that_holds_is_one_alert_that_takes_its_new_figures(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Passes while nothing changes do not count again; a second person overdue does,
    and the alert says so."""
    real_now = clock.now
    clock.now = real_now - timedelta(hours=23)
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock)
    today = real_now.astimezone(SHANGHAI).date()
    starts = [
        published(
            "isolation",
            {"person": {"pid": pid * 32}, "action": "start", "kind": "home"},
            when=when,
        )
        for pid, when in (("a", clock.now - timedelta(hours=2)), ("b", clock.now))
    ]
    reports = [
        published(
            "daily_report", {"date": str(today - timedelta(days=n)), "zero": True}, when=clock.now
        )
        for n in range(4)
    ]
    await world.send(*starts, *reports)

    async def overdue() -> list[tuple[str, int, str]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(alerts.c.state, alerts.c.occurrences, alerts.c.summary_en).where(
                    alerts.c.rule == "missed_isolation_check"
                )
            )
            return [tuple(r) for r in rows]

    clock.now = real_now  # a's check is 25 h overdue, b's 23 h: not yet
    for _ in range(3):
        await dog.tick()
    one = "1 isolated in 640106001001: no check for 24 h"
    assert await overdue() == [("firing", 1, one)]
    clock.now = real_now + timedelta(hours=2)
    await dog.tick()
    await dog.tick()
    two = "2 isolated in 640106001001: no check for 24 h"
    assert await overdue() == [("firing", 2, two)]


async def test_an_acknowledgement_made_while_a_silence_is_matched_stands(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog reads a firing alert, a person acknowledges it, then the watchdog
    finds a new silence matching it: the acknowledgement stands (the watchdog used to
    write 'silenced' over it: the acknowledged alert vanished from the acknowledged list,
    seen in CI in tests/security/test_alerts_database_lock.py)."""
    world = World(engine, clock, webhook)
    await world.send(
        published("case", {"person": {"pid": "e" * 32}, "classification": "confirmed"})
    )
    assert [r[2] for r in await open_rules(engine)] == ["firing"]
    clock.advance(minutes=1)
    await silence_community(engine, started=clock.now - timedelta(seconds=1), clock=clock)
    real_move = store.move_alert
    moved: list[bool] = []

    async def acknowledged_meanwhile(conn: Any, alert_id: int, *args: Any, **values: Any) -> bool:
        async with engine.begin() as other:  # the person's request, on its own connection
            acknowledge = update(alerts).where(alerts.c.id == alert_id)
            await other.execute(acknowledge.values(state="acknowledged"))
        moved.append(await real_move(conn, alert_id, *args, **values))
        return moved[-1]

    monkeypatch.setattr(store, "move_alert", acknowledged_meanwhile)
    routing = Routing(oncall(Receiver("http://127.0.0.1:9")), load_registry(), "http://aggregator")
    async with engine.begin() as conn:  # the silences step, as a tick with nothing else to do
        await Watchdog._silence(conn, routing, clock.now)
    assert moved == [False], "the watchdog, having read the alert firing, tried to silence it"
    assert [r[2] for r in await open_rules(engine)] == ["acknowledged"]
