"""A batch that opens several alerts opens them together: each its own timeline, its own
silence, its own page and its own group, and a condition raised twice in one batch is one
alert. On SQLite and on PostgreSQL (whose driver returns the new rows differently)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, fever, migrated
from tests.alerts.test_corrections import history
from tests.alerts.test_lifecycle import World, oncall
from tests.alerts.test_watchdog import silence_community
from tests.support.postgres import both_backends
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import Severity
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.raising import raise_alerts
from zhibao_alerts.tables import alerts, notifications, silences

pytestmark = pytest.mark.integration

NEIGHBOUR = "640106001002"  # no rota of its own: its street's on-call is paged

database = both_backends("alerts")


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    """The alerts database on each backend, migrated."""
    async with migrated(database) as engine:
        yield engine


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
    async with engine.connect() as conn:
        silence = (await conn.execute(select(silences.c.id))).scalar_one()
    for alert in found:
        fired = [("fired", None, alert.summary_en)]
        silenced = [("silenced", None, f"silence {silence}")] if alert.unit == COMMUNITY else []
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
    raised = [_aberration(clock, upper_bound=4.0), _aberration(clock, upper_bound=None)]
    async with engine.begin() as conn:
        opened = await raise_alerts(conn, raised, world.routing, clock.now, UTC)
    [alert] = await world.alerts()
    assert opened == [alert.id]
    assert (alert.occurrences, alert.upper_bound) == (2, 4.0), "the last known bound is kept"


def _aberration(clock: Clock, upper_bound: float | None) -> tuple[Trigger, float | None]:
    trigger = Trigger(
        rule="ears_c2_fevers",
        unit=COMMUNITY,
        window=clock.now.date().isoformat(),
        severity=Severity.WARNING,
        summary_zh="发热异常",
        summary_en="fevers above the expected",
        day=clock.now.date(),
    )
    return trigger, upper_bound


async def test_alerts_opened_together_join_their_own_group_and_no_other(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Alertmanager's group_wait: a new alert's first page joins its (unit, rule) group's
    pending one; alerts of one group opened together are due together."""
    world = World(engine, clock, webhook, rota=oncall(webhook).model_copy(update=_WAIT))
    first = clock.now
    await world.send(*(fever(building="3") for _ in range(3)))  # a cluster here
    clock.advance(seconds=4)
    await world.send(
        *(fever(building="7") for _ in range(3)),  # another here: it joins the first's page
        *(fever(building=b, community=NEIGHBOUR) for b in ("3", "3", "3", "7", "7", "7")),
        confirmed(pid="d" * 32),  # a case here: another rule, its own group
    )
    now = clock.now
    wait = timedelta(seconds=_WAIT["group_wait_seconds"])
    assert await _due_by_group(engine) == {
        ("fever_cluster", COMMUNITY): [first + wait, first + wait],
        ("fever_cluster", NEIGHBOUR): [now + wait, now + wait],
        ("immediate_confirmed", COMMUNITY): [now + wait],
    }


_WAIT = {"group_wait_seconds": 10}


async def _due_by_group(engine: AsyncEngine) -> dict[tuple[str, str], list[datetime]]:
    """When each alert's first notifications are due (all of an alert's at once), by
    (rule, unit)."""
    query = select(
        alerts.c.id, alerts.c.rule, alerts.c.unit, notifications.c.next_attempt_at
    ).join_from(notifications, alerts, alerts.c.id == notifications.c.alert_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    due: dict[int, set[datetime]] = defaultdict(set)
    groups: dict[int, tuple[str, str]] = {}
    for alert_id, rule, unit, at in rows:
        due[alert_id].add(at.astimezone(UTC))
        groups[alert_id] = (rule, unit)
    found: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for alert_id, [at] in sorted(due.items()):
        found[groups[alert_id]].append(at)
    return dict(found)
