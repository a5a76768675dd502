"""While the bus refuses task messages, ``zhibao_response_outbox_pending`` shows how many
wait, not how many one pass read (the rule ZhibaoTaskMessagesStuck quotes the value)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from tests.response.conftest import STORE_NOW
from tests.support.events import COMMUNITY_A
from zhibao_response.outbox import OutboxPublisher
from zhibao_response.store import Actor, NewTask, TaskStore


def _pending() -> float | None:
    return REGISTRY.get_sample_value("zhibao_response_outbox_pending")


async def test_the_gauge_counts_every_waiting_message_then_none_once_published(
    sqlite_store: TaskStore,
) -> None:
    store = sqlite_store
    due = STORE_NOW + timedelta(hours=24)
    tasks = [NewTask(f"{n:032x}", COMMUNITY_A, "verify_companion", due) for n in range(12)]
    await store.issue(tasks, Actor("district", "district-token"))
    published: list[str] = []
    bus_up = False

    async def publish(_subject: str, _body: bytes, msg_id: str) -> None:
        if not bus_up:
            raise TimeoutError("no acknowledgement in time")
        published.append(msg_id)

    outbox = OutboxPublisher(store, publish, batch=5)
    with pytest.raises(TimeoutError):
        await outbox.flush()
    assert _pending() == 12, "every message waiting, not the 5 of one read"
    bus_up = True
    assert await outbox.flush() == 12
    assert _pending() == 0
    assert len(published) == 12
