"""A task closed by a result while the store is cancelling or marking it overdue stays as
the result left it: the store writes and announces only what it really changed (on SQLite
and on PostgreSQL, where READ COMMITTED re-checks the guarded UPDATE's conditions).

The race is made to happen: the community's result is applied (and committed, on another
connection) just before the store's first write to the tasks it read a moment earlier.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Update, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.response.conftest import done_result
from tests.support.events import COMMUNITY_A
from tests.support.postgres import both_backends
from zhibao_response.store import Actor, Declaration, NewTask, ResultsApplied, TaskStore
from zhibao_response.tables import outbox, tasks
from zhibao_shared.db import make_engine, run_migrations

NOW = datetime.now(UTC).replace(microsecond=0)
ACTOR = Actor("district", "district-token")
TASK = "a" * 32


def before_first_task_update(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Awaitable[object]]
) -> list[object]:
    """Run ``meanwhile`` (once) just before the first UPDATE of the tasks table; what it
    returned is appended to the list returned here."""
    real = AsyncConnection.execute
    happened: list[object] = []

    async def execute(self: AsyncConnection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if not happened and isinstance(statement, Update) and statement.table is tasks:
            happened.append("started")
            happened[0] = await meanwhile()
        return await real(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncConnection, "execute", execute)
    return happened


database = both_backends("response")


async def engine_at(url: str) -> AsyncEngine:
    await run_migrations(url, "zhibao_response")
    return make_engine(url)


async def state_and_messages(engine: AsyncEngine) -> tuple[str, list[tuple[str, str]]]:
    """The task's state, and each outbox message's event and announced state in order."""
    async with engine.connect() as conn:
        state = (await conn.execute(select(tasks.c.state).where(tasks.c.id == TASK))).scalar()
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).all()
    messages = [(r.subject.rsplit(".", 1)[1], json.loads(r.body).get("state")) for r in rows]
    return str(state), messages


async def test_lifting_a_level_does_not_cancel_a_task_a_result_just_closed(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await engine_at(database)
    store = TaskStore(engine, lambda: NOW)
    red = Declaration("d" * 32, COMMUNITY_A, "red", "cases", (), [], "district", NOW)
    measure = NewTask(
        TASK, COMMUNITY_A, "testing_round", NOW + timedelta(hours=24), declaration_id=red.id
    )
    await store.declare(red, [measure], ACTOR)
    applied = before_first_task_update(
        monkeypatch, lambda: store.apply_results([done_result(TASK)])
    )
    lifted = Declaration("e" * 32, COMMUNITY_A, "none", "over", (), [], "district", NOW)
    closed = await store.declare(lifted, [], ACTOR)
    state, messages = await state_and_messages(engine)
    await engine.dispose()
    assert applied == [ResultsApplied(1, 0, 0)], "the result came while the lift was under way"
    assert closed == [], "the lift closed nothing: the task was done already"
    assert state == "done"
    assert ("changed", "cancelled") not in messages, messages
    assert ("changed", "done") in messages


async def test_an_overdue_check_does_not_announce_a_task_a_result_just_closed(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await engine_at(database)
    clock = [NOW]
    store = TaskStore(engine, lambda: clock[0])
    await store.issue(
        [NewTask(TASK, COMMUNITY_A, "verify_companion", NOW + timedelta(minutes=1))], ACTOR
    )
    clock[0] = NOW + timedelta(minutes=2)  # past due
    applied = before_first_task_update(
        monkeypatch, lambda: store.apply_results([done_result(TASK)])
    )
    announced = await store.mark_overdue()
    state, messages = await state_and_messages(engine)
    await engine.dispose()
    assert applied == [ResultsApplied(1, 0, 0)], "the result came while the check was under way"
    assert announced == 0
    assert state == "done"
    # an overdue message after the done one would reopen the task at intake (last one wins)
    assert [event for event, _ in messages] == ["issued", "changed"], messages


async def test_a_result_read_again_is_counted_as_repeated_not_as_recorded(
    database: str,
) -> None:
    """``zhibao_response_task_results_total{effect="recorded"}`` counts results kept only in
    a task's history (the task closed or moved on); a redelivered result used to be
    counted there too, so the figure grew with every redelivery."""
    engine = await engine_at(database)
    store = TaskStore(engine, lambda: NOW)
    due = NOW + timedelta(hours=24)
    await store.issue([NewTask(TASK, COMMUNITY_A, "verify_companion", due)], ACTOR)
    first = await store.apply_results([done_result(TASK)])
    again = await store.apply_results([done_result(TASK)])
    late = await store.apply_results([done_result(TASK, key="result-2")])
    await engine.dispose()
    assert first == ResultsApplied(changed=1, recorded=0, repeated=0)
    assert again == ResultsApplied(changed=0, recorded=0, repeated=1)
    assert late == ResultsApplied(changed=0, recorded=1, repeated=0), "the task was closed"
