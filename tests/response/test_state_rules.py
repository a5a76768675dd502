"""The state route keeps the rules a result through intake is held to: a kind that needs a
visit is not done without one, and a community's transfer stays in the task's district."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.response.conftest import DISTRICT, Harness, a_task, done_result
from tests.support.events import COMMUNITY_A, COMMUNITY_B
from tests.support.postgres import both_backends
from zhibao_response.store import Actor, NewTask, TaskStore
from zhibao_shared.db import make_engine, run_migrations
from zhibao_shared.task_events import TaskState

pytestmark = pytest.mark.integration

database = both_backends("response")
#: A community of the neighbouring district (640104, not the issuing 640106).
ELSEWHERE = "640104001001"


async def test_done_by_the_state_route_is_refused_for_a_kind_that_needs_a_visit(
    service: Harness,
) -> None:
    issued = await service.issue([a_task(), a_task(kind="verify_contact")])
    companion, contact = issued.json()["ids"]
    assert (await service.change(companion, "community_a", state="accepted")).status_code == 200

    refused = await service.change(companion, "community_a", state="done")
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert (problem["type"], problem["loc"]) == ("visit_required", ["body", "state"])
    assert "needs a visit" in problem["msg"] and "method visit" in problem["msg"]
    task = await service.task(companion, "district")
    assert task["state"] == "accepted" and task["closed_at"] is None
    assert [h["action"] for h in task["history"]] == ["issued", "accepted"]

    # what needs no visit still closes through the route, and so does the companion's
    # task when the community could not reach the person
    done = await service.change(contact, "community_a", state="done")
    assert done.status_code == 200 and done.json()["state"] == "done"
    unreachable = await service.change(companion, "community_a", state="unreachable")
    assert unreachable.status_code == 200 and unreachable.json()["state"] == "unreachable"


async def test_a_transfer_stays_in_the_district_the_task_was_issued_in(
    service: Harness,
) -> None:
    [task_id] = (await service.issue([a_task()])).json()["ids"]

    outside = await service.change(task_id, "community_a", state="transferred", to=ELSEWHERE)
    assert outside.status_code == 403, outside.text
    assert f"district {DISTRICT}" in outside.json()["detail"]
    task = await service.task(task_id, "district")
    assert (task["unit"], task["state"]) == (COMMUNITY_A, "issued")
    assert [h["action"] for h in task["history"]] == ["issued"]
    assert [t["id"] for t in await service.tasks(DISTRICT, "district")] == [task_id]
    assert await service.tasks("640104", "other_district") == []

    inside = await service.change(task_id, "community_a", state="transferred", to=COMMUNITY_B)
    assert inside.status_code == 200, inside.text
    assert (inside.json()["unit"], inside.json()["state"]) == (COMMUNITY_B, "issued")
    [listed] = await service.tasks(DISTRICT, "district")
    assert (listed["id"], listed["unit"]) == (task_id, COMMUNITY_B)


async def test_the_city_moves_a_task_between_its_districts(service: Harness) -> None:
    """A command centre covering both districts is not held to a community's limit: the
    city's token moves the task to the neighbouring district (and back)."""
    [task_id] = (await service.issue([a_task()], "city")).json()["ids"]
    moved = await service.change(task_id, "city", state="transferred", to=ELSEWHERE)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["unit"], moved.json()["state"]) == (ELSEWHERE, "issued")
    back = await service.change(task_id, "city", state="transferred", to=COMMUNITY_A)
    assert back.status_code == 200, back.text


async def test_a_result_applied_downstream_is_held_to_the_same_rules(database: str) -> None:
    """Intake refuses such results up front; the store, reading them off the stream, only
    records them (an intake judging on other settings, an older intake)."""
    await run_migrations(database, "zhibao_response")
    engine = make_engine(database)
    now = datetime.now(UTC).replace(microsecond=0)
    store = TaskStore(engine, lambda: now, frozenset({"verify_companion"}))
    task = "c" * 32
    await store.issue(
        [NewTask(task, COMMUNITY_A, "verify_companion", now + timedelta(hours=24))],
        Actor("district", "district-token"),
    )
    try:
        by_phone = replace(done_result(task, "by-phone"), method="phone")
        away = replace(
            done_result(task, "away"),
            outcome="transferred",
            wanted=TaskState.TRANSFERRED,
            to_unit=ELSEWHERE,
        )
        applied = await store.apply_results([by_phone, away])
        assert (applied.changed, applied.recorded) == (0, 2)
        row = await store.get(task)
        assert row is not None and (row.state, row.unit) == ("issued", COMMUNITY_A)

        assert (await store.apply_results([done_result(task, "visited")])).changed == 1
        row = await store.get(task)
        assert row is not None and row.state == "done"
    finally:
        await engine.dispose()
