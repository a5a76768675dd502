"""No value the contract admits can fail a database write (PostgreSQL enforces lengths).

Events with every text field at its longest (64-character compound and building labels,
a 128-character id, a 256-character source) go through the alerts handler on
PostgreSQL: they are applied, and three of them in one building make the cluster alert.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, migrated, published
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_shared.events import MAX_ID_LENGTH, MAX_SOURCE_LENGTH, PublishedEvent

pytestmark = pytest.mark.integration

LABEL = 64
COMPOUND = "枫" * LABEL
BUILDING = "楼" * LABEL


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated(postgres_url) as engine:
        yield engine


def longest_fever(n: int) -> PublishedEvent:
    event = published(
        "screening",
        {
            "temperature_c": 38.5,
            "site": "household",
            "compound": COMPOUND,
            "building": BUILDING,
            "person": {"pid": f"{n:032x}"},
        },
        event_id=f"{n}".rjust(MAX_ID_LENGTH, "e"),
    )
    source = f"/{COMMUNITY}/" + "s" * (MAX_SOURCE_LENGTH - len(COMMUNITY) - 2)
    return event.model_copy(update={"source": source})


async def test_the_longest_labels_ids_and_sources_still_make_a_cluster_on_postgresql(
    pg_engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(pg_engine, clock, webhook)
    await world.send(*(longest_fever(n) for n in range(3)))
    [alert] = await world.alerts()
    assert alert.rule == "fever_cluster"
    assert COMPOUND in alert.window and BUILDING in alert.window
