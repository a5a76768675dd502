"""Alerts follow event time and count people (issue #13): arrival order, the local day,
a unit's first data and repeated screenings of one person change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, correction, published
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.alerts.test_time_rules import SHANGHAI, at_shanghai, rows, watchdog
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.store import NO_CHECK_YET
from zhibao_alerts.tables import alerts, isolations
from zhibao_shared.events import PublishedEvent


def sick(pid: str | None, when: datetime, building: str = "3", **kw: Any) -> PublishedEvent:
    """A fever screening at 枫林湾 building ``building``, of a named person or nobody."""
    data: dict[str, Any] = {
        "temperature_c": 38.6,
        "site": "household",
        "compound": "枫林湾",
        "building": building,
    }
    if pid is not None:
        data["person"] = {"pid": pid}
    return published("screening", data, when=when, **kw)


def isolation(pid: str, action: str, when: datetime, **kw: Any) -> PublishedEvent:
    data: dict[str, Any] = {"person": {"pid": pid}, "action": action, "kind": "home"}
    return published("isolation", data, when=when, **kw)


async def test_a_check_before_the_end_arriving_after_it_does_not_reopen_the_isolation(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    now = clock.now
    await world.send(isolation("1" * 32, "start", now - timedelta(hours=60)))
    await world.send(isolation("1" * 32, "end", now - timedelta(hours=30)))
    await world.send(isolation("1" * 32, "check", now - timedelta(hours=40)))  # late
    # the start arrives after the end, and an old check after both
    await world.send(isolation("2" * 32, "end", now - timedelta(hours=30)))
    await world.send(isolation("2" * 32, "start", now - timedelta(hours=60)))
    await world.send(isolation("2" * 32, "check", now - timedelta(hours=50)))
    await dog.tick()
    assert await rows(engine, "missed_isolation_check") == [], "both isolations ended"


async def test_an_isolation_first_heard_of_by_its_end_keeps_its_last_check_not_the_end(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Its district's partition may apply the end before the start and check that came
    from another district: the last check is the check's time, in any order."""
    world = World(engine, clock, webhook)
    now, person = clock.now, "3" * 32
    checked = now - timedelta(minutes=150)
    await world.send(isolation(person, "end", now - timedelta(minutes=90)))
    await world.send(isolation(person, "start", now - timedelta(hours=3)))
    await world.send(isolation(person, "check", checked))
    async with engine.connect() as conn:
        row = (await conn.execute(select(isolations).where(isolations.c.pid == person))).one()
    assert (row.active, row.last_check_at) == (0, checked)


#: An isolation's start, check and breach, in hours before now: the last check is 30 h
#: old (a missed check), the breach later than it is no check.
START_CHECK_BREACH = {"start": 40, "check": 30, "breach": 20}


async def missed_checks(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(summary_en, state) of every missed-check alert, oldest first."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(alerts.c.summary_en, alerts.c.state)
            .where(alerts.c.rule == "missed_isolation_check")
            .order_by(alerts.c.id)
        )
        return [(summary, state) for summary, state in found]


@pytest.mark.parametrize("end_id", ["a-end", "z-end"])
@pytest.mark.parametrize("end_first", [True, False], ids=["end-first", "start-first"])
async def test_a_start_and_an_end_at_the_same_time_decide_as_the_aggregator_does(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, end_first: bool, end_id: str
) -> None:
    """Of a start and an end with the same event time, the one with the later identity
    decides (the aggregator folds a person's facts by time, then identity: its
    ``isolation_history``), whatever order they arrive in."""
    world = World(engine, clock, webhook)
    person, at = "6" * 32, clock.now - timedelta(hours=30)
    start = isolation(person, "start", at, event_id="m-start")
    end = isolation(person, "end", at, event_id=end_id)
    for one in (end, start) if end_first else (start, end):
        await world.send(one)
    _community, active, _check, _status = await isolation_of(engine, person)
    assert active == (0 if end.dedup_key > start.dedup_key else 1)


async def isolation_of(engine: AsyncEngine, person: str) -> tuple[Any, ...]:
    """A person's isolation as stored: (community, active, last check, status time)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(isolations).where(isolations.c.pid == person))).one()
    return (row.community, row.active, row.last_check_at, row.status_at)


@pytest.mark.parametrize("order", list(permutations(START_CHECK_BREACH)), ids="-".join)
async def test_a_breach_is_no_check_whatever_order_start_check_and_breach_arrive_in(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, order: tuple[str, ...]
) -> None:
    """Each event in a request of its own: the last check is the check's time (only a
    start or a check is one), so the missed check is raised in every order; a
    correction that folds the isolation again keeps the same row."""
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    person = "4" * 32
    at = {action: clock.now - timedelta(hours=h) for action, h in START_CHECK_BREACH.items()}
    sent = {action: isolation(person, action, when) for action, when in at.items()}
    for action in order:
        await world.send(sent[action])
    expected = (COMMUNITY, 1, at["check"], at["start"])
    assert await isolation_of(engine, person) == expected
    await dog.tick()
    missed = [(f"1 isolated in {COMMUNITY}: no check for 24 h", "firing")]
    assert await missed_checks(engine) == missed
    # the breach replaced by the same breach: the isolation is folded again from its events
    data = {"person": {"pid": person}, "action": "breach", "kind": "home"}
    await world.send(correction(sent["breach"], data, reason="重报 (sent again)"))
    assert await isolation_of(engine, person) == expected
    await dog.tick()
    assert await missed_checks(engine) == missed


async def test_a_breach_alone_opens_no_isolation_and_a_check_then_does(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """As in the aggregator's figures, a breach opens no isolation and is no check: no
    missed check for a person only a breach is known of; their check arriving later (a
    check counts as open until a start or end arrives) is their last check."""
    world = World(engine, clock, webhook)
    dog = watchdog(engine, clock, webhook, NO_ABERRATION)
    person = "5" * 32
    await world.send(isolation(person, "breach", clock.now - timedelta(hours=30)))
    assert await isolation_of(engine, person) == (COMMUNITY, 0, NO_CHECK_YET, None)
    await dog.tick()
    assert await missed_checks(engine) == []
    checked = clock.now - timedelta(hours=26)
    await world.send(isolation(person, "check", checked))
    assert await isolation_of(engine, person) == (COMMUNITY, 1, checked, None)
    await dog.tick()
    assert await missed_checks(engine) == [
        (f"1 isolated in {COMMUNITY}: no check for 24 h", "firing")
    ]


async def test_three_fevers_make_one_cluster_whatever_order_they_arrive_in(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(1, 12, clock)
    world = World(engine, clock, webhook)
    day = clock.now.astimezone(SHANGHAI).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)
    await world.send(sick("b" * 32, midnight + timedelta(hours=2)))
    await world.send(sick("c" * 32, midnight + timedelta(hours=6)))
    assert await world.alerts() == []
    clock.advance(hours=5)  # the earliest, of the evening before, arrives last
    await world.send(sick("a" * 32, midnight - timedelta(hours=4)))
    clock.advance(hours=3)  # and one more of the day before, completing an overlapping window
    await world.send(sick("d" * 32, midnight - timedelta(hours=15)))
    found = await world.alerts()
    assert [a.rule for a in found] == ["fever_cluster"], "one cluster, raised once"
    assert "有 4 人发热" in found[0].summary_zh
    await world.dispatcher.tick()
    paged = [b["groupLabels"]["alertname"] for b in webhook.bodies("/community")]
    assert paged == ["fever_cluster"]


@pytest.mark.parametrize("order", list(permutations(range(3))), ids=str)
async def test_three_fevers_raise_one_cluster_in_every_order_of_arrival(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, order: tuple[int, ...]
) -> None:
    """Fevers 20, 10 and 1 hours before the first request, each in a request of its own
    three hours after the one before: the cluster is raised once the third arrives."""
    clock.now = at_shanghai(1, 12, clock)
    world = World(engine, clock, webhook)
    fevers = [
        sick(f"{n + 1}" * 32, clock.now - timedelta(hours=h)) for n, h in enumerate((20, 10, 1))
    ]
    for arrived, index in enumerate(order):
        assert await world.alerts() == [], f"no cluster from {arrived} fevers"
        await world.send(fevers[index])
        clock.advance(hours=3)
    found = await world.alerts()
    assert [a.rule for a in found] == ["fever_cluster"]
    assert "有 3 人发热" in found[0].summary_zh


async def test_a_cluster_resolves_itself_when_the_local_day_after_it_is_over(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    later = at_shanghai(1, 3, clock)  # 03:00 in Shanghai is 19:00 UTC the day before
    clock.now = at_shanghai(3, 12, clock)
    world = World(engine, clock, webhook)
    await world.send(*(sick(None, clock.now - timedelta(minutes=n)) for n in range(3)))
    [cluster] = await world.alerts()
    clock.now = later  # two days later
    await world.dispatcher.tick()
    [cluster] = await world.alerts()
    assert cluster.state == "resolved", "its day and the day of grace are over in Shanghai"


async def test_one_feverish_person_screened_three_times_is_no_cluster(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    now = clock.now
    await world.send(*(sick("e" * 32, now - timedelta(minutes=n)) for n in (30, 20, 10)))
    assert await world.alerts() == []
    await world.send(sick("f" * 32, now - timedelta(minutes=5)), sick(None, now))
    [cluster] = await world.alerts()
    assert "有 3 人发热" in cluster.summary_zh, "two named persons and one screening without"


STEADY = Rules.model_validate(
    {"aberration": {"methods": ["C1", "C2", "C3"], "metrics": ["fevers"], "min_sd": 1.0}}
)


async def test_a_unit_that_starts_reporting_a_steady_count_does_not_alarm(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(1, 1, clock) - timedelta(days=3)
    world = World(engine, clock, webhook, rules=STEADY)
    for _ in range(4):
        start = clock.now
        await world.send(
            *(sick(None, start + timedelta(minutes=n), building=str(n)) for n in range(30))
        )
        clock.advance(days=1)
    ears = [a.rule for a in await world.alerts() if a.rule.startswith("ears_")]
    assert ears == [], "days before the unit's first data are missing, not zero"


ONE_DAY = Rules.model_validate(
    {
        "cluster": {"min_fevers": 100},
        "aberration": {"methods": ["C1"], "metrics": ["fevers"], "min_sd": 1.0},
    }
)


async def test_the_fever_series_counts_a_person_once_a_day(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(2, 1, clock) - timedelta(days=8)
    world = World(engine, clock, webhook, rules=ONE_DAY)
    for _ in range(9):  # nine quiet days of data: a baseline of zeros
        normal = {"temperature_c": 36.5, "site": "gate"}
        await world.send(published("screening", normal, when=clock.now))
        clock.advance(days=1)
    await world.send(*(sick("9" * 32, clock.now - timedelta(minutes=n)) for n in range(5)))
    assert await world.alerts() == [], "one feverish person, screened five times"
    await world.send(*(sick(f"{n}" * 32, clock.now - timedelta(minutes=9)) for n in range(1, 5)))
    found = {a.unit: a for a in await world.alerts()}
    assert set(found) == {COMMUNITY, COMMUNITY[:9], COMMUNITY[:6]}, "at every level"
    ears = found[COMMUNITY]
    assert ears.rule == "ears_c1_fevers" and "发热 5 人" in ears.summary_zh


async def test_the_same_confirmed_person_pages_once_and_another_pages_again(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    yesterday = clock.now - timedelta(days=1)
    await world.send(confirmed(pid="a" * 32, when=yesterday))
    await world.dispatcher.tick()
    async with engine.begin() as conn:
        await conn.execute(alerts.update().values(state="acknowledged"))
    await world.send(confirmed(pid="a" * 32, when=clock.now - timedelta(minutes=3)))  # follow-up
    await world.send(confirmed(pid="a" * 32, when=yesterday, community="640106001002"))
    assert len(await world.alerts()) == 1, "the same person, reported again, is not paged again"
    await world.send(confirmed(pid="b" * 32, when=yesterday + timedelta(minutes=1)))
    await world.send(
        published(
            "case",
            {"person": {"pid": "a" * 32}, "classification": "deceased"},
            when=yesterday + timedelta(hours=1),
        )
    )
    found = [(a.rule, a.state) for a in await world.alerts()]
    assert found == [
        ("immediate_confirmed", "acknowledged"),
        ("immediate_confirmed", "firing"),
        ("immediate_deceased", "firing"),
    ]
    await world.dispatcher.tick()
    paged = [a["labels"]["alertname"] for b in webhook.bodies("/community") for a in b["alerts"]]
    assert sorted(paged) == ["immediate_confirmed", "immediate_confirmed", "immediate_deceased"]


async def test_new_fevers_the_next_day_at_a_place_still_ill_are_a_new_cluster(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(2, 23, clock)
    world = World(engine, clock, webhook)
    await world.send(*(sick(f"{n}" * 32, clock.now - timedelta(hours=n)) for n in (1, 2, 3)))
    clock.advance(hours=6)  # 05:00 the next day: three more persons, within 24 h of the first
    await world.send(*(sick(f"{n}" * 32, clock.now - timedelta(hours=n - 3)) for n in (4, 5, 6)))
    await world.send(sick("7" * 32, clock.now - timedelta(hours=23)))  # a late one of the first
    found = [(a.rule, a.day, a.occurrences) for a in await world.alerts()]
    first = (clock.now - timedelta(hours=7)).astimezone(SHANGHAI).date()
    assert found == [
        ("fever_cluster", first, 2),
        ("fever_cluster", first + timedelta(days=1), 1),
    ]
