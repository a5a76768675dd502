"""An idle alerts service does the same small work with 10 or 1,000 open alerts.

Measured as SQL statements and SQLite virtual-machine steps (no clock involved) over a
fixed number of passes of the dispatcher's loop and the watchdog, on a driven clock.
Before, the dispatcher read every open alert on each pass (several passes a second)
and the watchdog looked up the silences once per firing alert.
"""

from __future__ import annotations

from pathlib import Path

from tests.alerts.conftest import Clock, fever
from tests.alerts.db_work import Work, measure
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import OnCall
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
