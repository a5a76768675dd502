"""A batch that opens several alerts opens them together: each its own timeline, its own
silence, its own page, and a condition raised twice in one batch is one alert."""

from __future__ import annotations

from datetime import UTC, date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, fever
from tests.alerts.test_corrections import history
from tests.alerts.test_lifecycle import World
from tests.alerts.test_watchdog import silence_community
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import Severity
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.raising import raise_alerts
from zhibao_alerts.tables import notifications

NEIGHBOUR = "640106001002"  # no rota of its own: its street's on-call is paged


async def test_alerts_opened_by_one_batch_are_each_noted_silenced_and_paged_as_their_own(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await silence_community(engine, started=clock.now - timedelta(seconds=1), clock=clock)
    await world.send(
        confirmed(pid="a" * 32, community=NEIGHBOUR),
        confirmed(pid="b" * 32, community=COMMUNITY),
        *(fever(community=NEIGHBOUR) for _ in range(3)),  # a cluster in building 3
    )
    found = await world.alerts()
    assert sorted((a.rule, a.unit, a.state) for a in found) == [
        ("fever_cluster", NEIGHBOUR, "firing"),
        ("immediate_confirmed", COMMUNITY, "silenced"),
        ("immediate_confirmed", NEIGHBOUR, "firing"),
    ]
    for alert in found:
        fired = [("fired", None, alert.summary_en)]
        silenced = [("silenced", None, "silence 1")] if alert.unit == COMMUNITY else []
        assert await history(engine, alert.id) == fired + silenced, alert.rule
    paged = {a.id: a.summary_en for a in found if a.unit == NEIGHBOUR}
    async with engine.connect() as conn:
        queued = (await conn.execute(select(notifications.c.alert_id))).scalars().all()
    assert set(queued) == set(paged)
    await world.dispatcher.tick()
    assert webhook.bodies("/community") == [], "the silenced community's worker is not paged"
    summaries = [
        a["annotations"]["summary"] for b in webhook.bodies("/street") for a in b["alerts"]
    ]
    assert sorted(summaries) == sorted(paged.values())


async def test_a_condition_raised_twice_in_one_batch_is_one_alert_counted_twice(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    raised = [_aberration(upper_bound=4.0), _aberration(upper_bound=None)]
    async with engine.begin() as conn:
        opened = await raise_alerts(conn, raised, world.routing, clock.now, UTC)
    [alert] = await world.alerts()
    assert opened == [alert.id]
    assert (alert.occurrences, alert.upper_bound) == (2, 4.0), "the last known bound is kept"


def _aberration(upper_bound: float | None) -> tuple[Trigger, float | None]:
    trigger = Trigger(
        rule="ears_c2_fevers",
        unit=COMMUNITY,
        window="2026-12-01",
        severity=Severity.WARNING,
        summary_zh="发热异常",
        summary_en="fevers above the expected",
        day=date(2026, 12, 1),
    )
    return trigger, upper_bound
