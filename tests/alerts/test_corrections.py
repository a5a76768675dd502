"""Corrections (issue 16) as the alerts service applies them, on SQLite and PostgreSQL: a
retracted or replaced event no longer counts, the alerts its evidence raised are judged
again (resolved with the correction's reason, never deleted), in any arrival order and
once however often a correction is delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, correction, migrated, published
from tests.alerts.test_event_time import ONE_DAY, isolation, sick
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.alerts.test_time_rules import at_shanghai, rows, watchdog
from tests.support.webhook import Receiver
from zhibao_alerts import correction_store
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_alerts.tables import alerts, daily_counts, daily_reports, event_records, timeline
from zhibao_shared.db import sqlite_url

DISTRICT = COMMUNITY[:6]
OTHER = "640106001002"
ONE_MINUTE = timedelta(minutes=1)
REASON = "测温枪故障，复测 36.6 °C (thermometer fault)"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite, and PostgreSQL as deployed at scale."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path, "alerts")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    """The alerts schema, migrated."""
    async with migrated(db_url) as engine:
        yield engine


async def fevers_counted(engine: AsyncEngine, unit: str = COMMUNITY) -> int:
    """The community's fevers in its daily series (all days)."""
    async with engine.connect() as conn:
        values = await conn.execute(
            select(daily_counts.c.value).where(
                daily_counts.c.unit == unit, daily_counts.c.metric == "fevers"
            )
        )
        return sum(values.scalars())


async def history(engine: AsyncEngine, alert_id: int) -> list[tuple[str, str | None, str | None]]:
    """An alert's timeline: (action, actor, detail)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(timeline.c.action, timeline.c.actor, timeline.c.detail)
            .where(timeline.c.alert_id == alert_id)
            .order_by(timeline.c.id)
        )
        return [(a, actor, detail) for a, actor, detail in found]


def three_fevers(now: datetime) -> list[Any]:
    """Three persons with a fever in building 3 within the hour: a cluster."""
    return [sick(f"{n}" * 32, now - timedelta(minutes=10 * n)) for n in (1, 2, 3)]


async def test_a_retracted_fever_of_a_three_fever_cluster_resolves_it_with_the_reason(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = three_fevers(clock.now)
    await world.send(*fevers)
    [cluster] = await world.alerts()
    assert (cluster.rule, cluster.state) == ("fever_cluster", "firing")
    clock.advance(minutes=30)
    await world.send(correction(fevers[1], reason=REASON, reporter="grid-7"))
    [cluster] = await world.alerts()
    assert cluster.state == "resolved" and cluster.resolved_at == clock.now
    entries = await history(db, cluster.id)
    assert entries[-2][:2] == ("evidence_withdrawn", "grid-7")
    assert REASON in (entries[-2][2] or "") and "retracted" in (entries[-2][2] or "")
    assert entries[-1][0] == "resolved" and REASON in (entries[-1][2] or "")
    assert await fevers_counted(db) == 2, "the retracted fever is no fever in the series"


async def test_a_cluster_with_enough_fevers_left_stays_open_and_says_the_new_count(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = [*three_fevers(clock.now), sick("4" * 32, clock.now - timedelta(minutes=45))]
    await world.send(*fevers)
    [cluster] = await world.alerts()
    assert "有 4 人发热" in cluster.summary_zh
    await world.send(correction(fevers[0], reason=REASON))
    [cluster] = await world.alerts()
    assert cluster.state == "firing", "three fevers are still a cluster"
    assert "有 3 人发热" in cluster.summary_zh and "3 fevers" in cluster.summary_en
    action, _actor, detail = (await history(db, cluster.id))[-1]
    assert action == "corrected" and REASON in (detail or "")


async def test_a_confirmed_case_retracted_after_acknowledgement_stays_resolved_with_the_reason(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    case = confirmed(pid="a" * 32)
    await world.send(case)
    await world.dispatcher.tick()
    async with db.begin() as conn:
        await conn.execute(
            alerts.update().values(state="acknowledged", acknowledged_by="duty officer")
        )
    await world.send(correction(case, reason="another person's result, entered in error"))
    [alert] = await world.alerts()
    assert (alert.rule, alert.state, alert.acknowledged_by) == (
        "immediate_confirmed",
        "resolved",
        "duty officer",
    ), "never deleted: the acknowledgement stays, the alert is resolved"
    actions = [a for a, _, _ in await history(db, alert.id)]
    assert actions[-2:] == ["evidence_withdrawn", "resolved"]
    clock.advance(hours=1)
    await world.dispatcher.tick()
    assert len(webhook.bodies("/street")) == 0, "a resolved alert does not escalate"
    # the person, now really confirmed, is news again: a new alert pages
    await world.send(confirmed(pid="a" * 32))
    assert [a.state for a in await world.alerts()] == ["resolved", "firing"]


@pytest.mark.parametrize("retraction_first", [False, True], ids=["after", "before"])
async def test_a_community_cannot_withdraw_a_case_its_district_reported(
    db: AsyncEngine, clock: Clock, webhook: Receiver, retraction_first: bool
) -> None:
    """Concealment: a community's retraction (even one sent in advance) of a confirmed case
    the district's CDC reported resolves nothing; the district's own retraction does."""
    world = World(db, clock, webhook)
    case = confirmed(pid="d" * 32, level=DISTRICT)
    own = correction(case, reason="录入错误", level=COMMUNITY)
    await world.send(*([own, case] if retraction_first else [case, own]))
    [alert] = await world.alerts()
    assert (alert.rule, alert.state) == ("immediate_confirmed", "firing")
    await world.send(correction(case, level=DISTRICT))
    assert [a.state for a in await world.alerts()] == ["resolved"]


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
async def test_a_community_cannot_undo_its_districts_confirmation_of_its_case(
    db: AsyncEngine, clock: Clock, webhook: Receiver, arrival: str
) -> None:
    """Concealment: the community reports a suspected case, the district's CDC confirms it
    by a replacement, the community retracts its report later: the CDC's word stands (the
    case's alert keeps firing), whatever order the corrections arrive in."""
    world = World(db, clock, webhook)
    pid = {"pid": "e" * 32}
    case = published(
        "case", {"person": pid, "classification": "suspected"}, when=clock.now, level=COMMUNITY
    )
    cdc = correction(
        case,
        {"person": pid, "classification": "confirmed"},
        when=clock.now + timedelta(minutes=1),
        level=DISTRICT,
    )
    own = correction(
        case, reason="录入错误", when=clock.now + timedelta(minutes=2), level=COMMUNITY
    )
    await world.send(case)
    for one in [cdc, own] if arrival == "in order" else [own, cdc]:
        await world.send(one)
    confirmed_alerts = [a for a in await world.alerts() if a.rule == "immediate_confirmed"]
    assert [a.state for a in confirmed_alerts] == ["firing"]


async def test_a_rank_kept_for_another_decider_is_not_believed(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A version before ranks (rolled back, or during a rolling update) decides a record
    by writing ``decided_at``/``decided_by`` alone, leaving the district's rank behind:
    it is not taken for the new decider's, so the district's next correction decides."""
    world = World(db, clock, webhook)
    pid = {"pid": "f" * 32}
    confirmed = {"person": pid, "classification": "confirmed"}
    case = published(
        "case", {"person": pid, "classification": "suspected"}, when=clock.now, level=COMMUNITY
    )
    await world.send(case, correction(case, confirmed, when=clock.now + ONE_MINUTE, level=DISTRICT))
    own = correction(case, when=clock.now + 3 * ONE_MINUTE, level=COMMUNITY)
    async with db.begin() as conn:  # as the earlier version applies the community's
        await conn.execute(
            update(event_records)
            .where(event_records.c.dedup_key == case.dedup_key)
            .values(decided_at=own.time, decided_by=own.dedup_key)
        )
    later = correction(case, confirmed, when=clock.now + 2 * ONE_MINUTE, level=DISTRICT)
    await world.send(later)
    async with db.connect() as conn:
        [row] = (await correction_store.records(conn, [case.dedup_key])).values()
    assert row.decided == (6, later.time, later.dedup_key)


async def test_a_case_moved_by_a_report_elsewhere_and_a_retraction_here_alerts_there(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Reported in A, reported again in B (no second page: the person was alerted on),
    then A's report retracted: A's alert is withdrawn and B, where the case now counts,
    is alerted (the aggregator counts it in B)."""
    world = World(db, clock, webhook)
    in_a = confirmed(pid="f" * 32, when=clock.now - timedelta(hours=2))
    in_b = confirmed(pid="f" * 32, community=OTHER, when=clock.now - timedelta(hours=1))
    await world.send(in_a)
    await world.send(in_b)
    assert [(a.unit, a.state) for a in await world.alerts()] == [(COMMUNITY, "firing")]
    await world.send(correction(in_a, reason="录错社区"))
    assert sorted((a.unit, a.state) for a in await world.alerts()) == sorted(
        [(COMMUNITY, "resolved"), (OTHER, "firing")]
    )
    # retracting a report that raised no alert of its own moves nothing
    again_in_a = confirmed(pid="f" * 32, when=clock.now - timedelta(minutes=30))
    await world.send(again_in_a)
    await world.send(correction(again_in_a, reason="重复"))
    assert sorted((a.unit, a.state) for a in await world.alerts()) == sorted(
        [(COMMUNITY, "resolved"), (OTHER, "firing")]
    )


async def test_a_case_moved_from_a_report_older_than_the_paging_horizon_is_paged(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The retraction that moves the case is the news: the alert in B opens firing even
    when B's report was received past the horizon for paging (24 h)."""
    world = World(db, clock, webhook, horizon=PageHorizon(24))
    real = clock.now
    clock.now = real - timedelta(hours=30)
    in_a = confirmed(pid="7" * 32, when=clock.now - timedelta(hours=2))
    in_b = confirmed(pid="7" * 32, community=OTHER, when=clock.now - timedelta(hours=1))
    await world.send(in_a)
    await world.send(in_b)
    clock.now = real
    await world.send(correction(in_a, reason="录错社区"))
    states = {a.unit: a.state for a in await world.alerts()}
    assert states[OTHER] == "firing"


async def test_a_case_retracted_before_its_page_went_out_is_not_paged(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    case = confirmed(pid="e" * 32)
    await world.send(case)
    await world.send(correction(case))
    assert await world.dispatcher.tick() == 0
    assert webhook.bodies("/community") == []
    [alert] = await world.alerts()
    assert alert.state == "resolved"


async def test_a_case_with_another_report_of_the_person_left_stays_open(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    first = confirmed(pid="b" * 32, when=clock.now - timedelta(hours=3))
    follow_up = confirmed(pid="b" * 32, when=clock.now - timedelta(hours=1))
    await world.send(first, follow_up)
    await world.send(correction(first))
    assert [(a.rule, a.state) for a in await world.alerts()] == [
        ("immediate_confirmed", "firing")
    ], "the follow-up report still confirms the person"


async def test_a_correction_before_its_event_is_held_and_applied_when_it_arrives(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = three_fevers(clock.now)
    case = confirmed(pid="c" * 32)
    excluded = {"person": {"pid": "c" * 32}, "classification": "excluded"}
    await world.send(correction(fevers[2]), correction(case, excluded))
    await world.send(*fevers[:2])
    await world.send(fevers[2], case)
    assert await world.alerts() == [], "the retracted fever and the excluded case never alert"
    assert await fevers_counted(db) == 2


async def test_a_correction_delivered_twice_is_applied_once(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = [sick(None, clock.now - timedelta(minutes=n)) for n in range(1, 6)]
    await world.send(*fevers)
    retraction = correction(fevers[0])
    await world.send(retraction, retraction)
    await world.send(retraction)  # redelivered
    unseen = sick(None, clock.now - timedelta(minutes=7))
    early = correction(unseen)
    await world.send(early, early)
    await world.send(early)
    await world.send(unseen)
    assert await fevers_counted(db) == 4, "one fever retracted, once; the held one never counts"
    [cluster] = await world.alerts()
    assert cluster.state == "firing" and "有 4 人发热" in cluster.summary_zh


async def test_a_replace_with_a_normal_temperature_is_no_fever_and_a_later_one_restores_it(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = three_fevers(clock.now)
    await world.send(*fevers)
    normal = {"temperature_c": 36.6, "site": "household", "compound": "枫林湾", "building": "3"}
    remeasured = correction(fevers[0], normal, when=clock.now + timedelta(minutes=1))
    await world.send(remeasured)
    [cluster] = await world.alerts()
    assert cluster.state == "resolved" and await fevers_counted(db) == 2
    hot = {**normal, "temperature_c": 38.9, "person": {"pid": "1" * 32}}
    # an earlier correction arriving late changes nothing: the last one decides
    stale = correction(fevers[0], hot, when=clock.now)
    await world.send(stale)
    assert await fevers_counted(db) == 2
    restored = correction(fevers[0], hot, when=clock.now + timedelta(minutes=2))
    await world.send(restored)
    assert await fevers_counted(db) == 3
    assert [a.state for a in await world.alerts()] == ["resolved", "firing"]


async def test_corrections_decide_in_their_own_time_order_whatever_order_they_arrive_in(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    first, second = sick(None, clock.now), sick(None, clock.now, building="9")
    await world.send(first, second)
    hot = {"temperature_c": 39.0, "site": "gate"}
    for event in (first, second):
        retract = correction(event, when=clock.now + timedelta(minutes=1))
        replace = correction(event, hot, when=clock.now + timedelta(minutes=2))
        ordered = (retract, replace) if event is first else (replace, retract)
        for one in ordered:
            await world.send(one)
    assert await fevers_counted(db) == 2, "the replace is the later correction of both"


async def test_a_retracted_end_of_isolation_makes_missed_checks_count_again(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    dog = watchdog(db, clock, webhook, NO_ABERRATION)
    start = isolation("5" * 32, "start", clock.now - timedelta(hours=60))
    end = isolation("5" * 32, "end", clock.now - timedelta(hours=30))
    await world.send(start, end)
    await dog.tick()
    assert await rows(db, "missed_isolation_check") == []
    await world.send(correction(end, reason="ended by mistake: still isolated"))
    await dog.tick()
    assert len(await rows(db, "missed_isolation_check")) == 1


async def test_a_retracted_start_leaves_a_breach_that_is_no_isolation_and_no_check(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Folded again from the breach alone, the person is in no isolation (as in the
    aggregator's figures): their missed check resolves itself."""
    world = World(db, clock, webhook)
    dog = watchdog(db, clock, webhook, NO_ABERRATION)
    start = isolation("6" * 32, "start", clock.now - timedelta(hours=40))
    breach = isolation("6" * 32, "breach", clock.now - timedelta(hours=30))
    await world.send(start, breach)
    await dog.tick()
    assert [s for _w, s in await rows(db, "missed_isolation_check")] == ["firing"]
    await world.send(correction(start, reason="started by mistake: never isolated"))
    await dog.tick()
    assert [s for _w, s in await rows(db, "missed_isolation_check")] == ["resolved"]


async def test_retracted_fevers_take_back_an_ears_alarm_at_every_level(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    clock.now = at_shanghai(2, 1, clock) - timedelta(days=8)
    world = World(db, clock, webhook, rules=ONE_DAY)
    for _ in range(9):  # nine quiet days of data: a baseline of zeros
        normal = {"temperature_c": 36.5, "site": "gate"}
        await world.send(published("screening", normal, when=clock.now))
        clock.advance(days=1)
    fevers = [sick(f"{n}" * 32, clock.now - timedelta(minutes=9)) for n in range(1, 6)]
    await world.send(*fevers)
    assert {a.unit for a in await world.alerts() if a.state == "firing"} == {
        COMMUNITY,
        COMMUNITY[:9],
        COMMUNITY[:6],
    }
    await world.send(*(correction(f, reason=REASON) for f in fevers[:3]))
    found = await world.alerts()
    assert [a.state for a in found] == ["resolved"] * 3, "two fevers are within the baseline"
    for alert in found:
        _action, _actor, detail = (await history(db, alert.id))[-1]
        assert REASON in (detail or "")


async def test_a_correction_naming_another_type_is_ignored(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = three_fevers(clock.now)
    await world.send(*fevers)
    excluded = {"person": {"pid": "1" * 32}, "classification": "excluded"}
    await world.send(correction(fevers[0], excluded, kind="zhibao.case.v1"))
    assert [a.state for a in await world.alerts()] == ["firing"]
    assert await fevers_counted(db) == 3


async def test_a_daily_report_replaced_with_another_day_closes_that_day_instead(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    today = at_shanghai(0, 12, clock).date()
    report = published("daily_report", {"date": str(today), "zero": True})
    await world.send(report)
    yesterday = {"date": str(today - timedelta(days=1)), "zero": True}
    await world.send(correction(report, yesterday, reason="closed the wrong day"))
    async with db.connect() as conn:
        closed = set((await conn.execute(select(daily_reports.c.day))).scalars())
    assert closed == {today - timedelta(days=1)}, "the replacement's day is closed, no longer today"
