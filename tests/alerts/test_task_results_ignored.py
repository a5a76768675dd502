"""Task results are the response service's business: the alerts service reads past them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed, published
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.tables import community_activity, daily_counts, isolations


async def test_a_task_result_raises_nothing_and_counts_nowhere(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    result = published(
        "task_result",
        {
            "task": "0" * 32,
            "outcome": "done",
            "method": "visit",
            "measures": ["home_isolation"],
            "person": {"pid": "d" * 32},
            "kind": "verify_contact",
        },
    )
    await world.send(result, result)
    assert await world.alerts() == []
    async with engine.connect() as conn:
        for table in (community_activity, daily_counts, isolations):
            assert await conn.scalar(select(func.count()).select_from(table)) == 0
    await world.send(confirmed())  # the batch after it is applied as ever
    assert [a.rule for a in await world.alerts()] == ["immediate_confirmed"]
