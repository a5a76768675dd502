"""An idle alerts service does the same small work with 10 or 1,000 open alerts (and a
scheduled alert follows a changed escalation policy).

Measured as SQL statements and SQLite virtual-machine steps (no clock involved) over a
fixed number of passes of the dispatcher's loop and the watchdog, on a driven clock.
Before, the dispatcher read every open alert on each pass (several passes a second)
and the watchdog looked up the silences once per firing alert.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed, fever, published
from tests.alerts.db_work import Work, measure
from tests.alerts.test_lifecycle import NO_ABERRATION, World, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Policy, Severity
from zhibao_alerts.raising import Routing
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.hierarchy import load_registry

PASSES = 20


async def _idle_work(tmp_path: Path, clusters: int, webhook: Receiver) -> Work:
    """The work of PASSES idle passes with ``clusters`` open cluster alerts."""
    url = sqlite_url(tmp_path, f"alerts{clusters}")
    await run_migrations(url, "zhibao_alerts")
    engine = make_engine(url)
    work = measure(engine)
    try:
        clock = Clock()
        world = World(engine, clock, webhook, rota=OnCall())  # pages go to NATS only
        fevers = [fever(building=str(b)) for b in range(clusters) for _ in range(3)]
        for start in range(0, len(fevers), 300):
            await world.send(*fevers[start : start + 300])
        # data from days back: the community is asked for the last day due, and misses it
        days_back = clock.now - timedelta(days=3)
        await world.send(
            published("screening", {"temperature_c": 36.5, "site": "gate"}, when=days_back)
        )
        routing = Routing(OnCall(), load_registry(), "http://aggregator")
        dog = Watchdog(engine, lambda: NO_ABERRATION, lambda: routing, "Asia/Shanghai", clock)
        await dog.tick()
        while await world.dispatcher.tick():  # the first pages go out
            pass
        assert len(await world.alerts()) == clusters + 1  # and a missing daily report
        work.reset()
        for _ in range(PASSES):
            clock.advance(seconds=1)
            await world.dispatcher.tick()
            await world.dispatcher.seconds_until_due(2.0)
            await dog.tick()
        return Work(work.statements, work.steps)
    finally:
        await engine.dispose()


async def test_an_idle_service_does_not_work_harder_with_more_open_alerts(
    tmp_path: Path, webhook: Receiver
) -> None:
    few = await _idle_work(tmp_path, 10, webhook)
    many = await _idle_work(tmp_path, 1000, webhook)
    assert many.statements == few.statements, (few, many)
    assert many.steps <= 2 * few.steps, (few, many)


async def test_a_shorter_escalation_policy_takes_effect_on_open_alerts_after_a_reload(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """An alert waiting for its street step (5 min) is rescheduled when the on-call file
    shortens it to 1 min: the street is paged after 1 min, not 5."""
    world = World(engine, clock, webhook)
    await world.send(confirmed())
    await world.dispatcher.tick()
    shorter = oncall(webhook).model_copy(
        update={
            "escalation": {
                **oncall(webhook).escalation,
                Severity.CRITICAL: Policy.model_validate(
                    {
                        "steps": [
                            {"level": "community", "after_minutes": 0},
                            {"level": "street", "after_minutes": 1},
                        ]
                    }
                ),
            }
        }
    )
    routing = Routing(shorter, load_registry(), "http://aggregator")

    async def no_nats(_subject: str, _body: bytes) -> None:
        return None

    reloaded = Dispatcher(engine, lambda: routing, no_nats, clock)
    clock.advance(minutes=2)
    await reloaded.tick()
    assert webhook.bodies("/street") == [], "scheduled for 5 min under the old policy"
    await reloaded.reschedule()
    await reloaded.tick()
    assert len(webhook.bodies("/street")) == 1
