"""Two response instances on one SQLite database (a rolling update): one forgetting
the messages it published never forgets the other's new ones (SQLite gives an emptied
table's ids out again)."""

from __future__ import annotations

from datetime import timedelta

from tests.response.conftest import STORE_NOW
from tests.support.events import COMMUNITY_A
from zhibao_response.store import Actor, NewTask, TaskStore

ACTOR = Actor("district", "district-token")


def _task(n: int) -> NewTask:
    return NewTask(f"{n:032x}", COMMUNITY_A, "verify_contact", STORE_NOW + timedelta(hours=24))


async def test_forgetting_published_messages_spares_new_ones_under_reused_ids(
    sqlite_store: TaskStore,
) -> None:
    first, second = sqlite_store, sqlite_store  # two instances' view of one database
    await first.issue([_task(1), _task(2)], ACTOR)
    read_by_first = await first.pending_messages(100)
    read_by_second = await second.pending_messages(100)
    await second.published(read_by_second)  # the second instance was quicker
    await second.issue([_task(3)], ACTOR)  # its next message: the emptied table's first id
    [new] = await second.pending_messages(100)
    assert new.id in {r.id for r in read_by_first}, "SQLite reused the id"
    await first.published(read_by_first)  # the first instance catches up
    assert [r.msg_id for r in await second.pending_messages(100)] == [new.msg_id]
