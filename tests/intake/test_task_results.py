"""Intake judges task results against the tasks stream it follows (no response service
here: the test announces tasks into ZHIBAO_TASKS as the response service would)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.intake.task_messages import announce
from tests.support.events import COMMUNITY_A, COMMUNITY_B
from tests.support.intake import RunningIntake
from tests.support.stream import stored_messages_async
from tests.support.task_results import task_result
from zhibao_shared.events import PublishedTaskResult, parse_message
from zhibao_shared.task_events import TaskEvent, TaskState

pytestmark = pytest.mark.integration


async def post(intake: RunningIntake, token: str, *events: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{intake.url}/v1/events",
            json=list(events),
            headers={"authorization": f"Bearer {token}"},
        )


def codes(answer: httpx.Response) -> list[str | None]:
    return [r.get("code") for r in answer.json()["results"]]


async def test_a_task_issued_a_moment_ago_is_found(intake: RunningIntake) -> None:
    """The race: the result arrives right after the task was announced; intake reads the
    tasks stream up to its end before judging, so the result is accepted."""
    token = intake.token(COMMUNITY_A)
    task = uuid.uuid4().hex
    await announce(intake.nats.url, TaskEvent.ISSUED, task, COMMUNITY_A)
    answer = await post(
        intake, token, task_result(task, measures=["home_isolation"], note="找邻居")
    )
    assert answer.status_code == 202, answer.text
    [(_subject, payload, _headers)] = [
        m for m in await stored_messages_async(intake.nats.url) if b"task_result" in m[1]
    ]
    [event] = parse_message(payload)
    assert isinstance(event, PublishedTaskResult)
    assert event.data.kind == "verify_contact"
    assert event.data.person is not None and event.data.person.pid == "ab" * 16
    assert event.data.sealed_note is not None
    assert "找邻居" not in payload.decode() and "note" not in json.loads(payload)["data"]


async def test_refusals_follow_the_task_as_the_stream_last_said(intake: RunningIntake) -> None:
    token = intake.token("640106")
    moved, closed, visit = (uuid.uuid4().hex for _ in range(3))
    await announce(intake.nats.url, TaskEvent.ISSUED, moved, COMMUNITY_A)
    await announce(intake.nats.url, TaskEvent.CHANGED, moved, COMMUNITY_B, TaskState.TRANSFERRED)
    await announce(intake.nats.url, TaskEvent.ISSUED, closed, COMMUNITY_A)
    await announce(intake.nats.url, TaskEvent.CHANGED, closed, COMMUNITY_A, TaskState.DONE)
    await announce(intake.nats.url, TaskEvent.ISSUED, visit, COMMUNITY_A, requires_visit=True)
    answer = await post(
        intake,
        token,
        task_result(moved),
        task_result(closed),
        task_result(visit, method="phone"),
        task_result(uuid.uuid4().hex),
        task_result(visit, outcome="transferred", transfer_to="640106999999"),
        task_result(visit, outcome="transferred", transfer_to="640104001001"),
        task_result(moved, COMMUNITY_B, method="phone"),
        task_result(visit, outcome="unreachable", method="phone"),
    )
    assert answer.status_code == 207, answer.text
    assert codes(answer) == [
        "task_not_assigned",
        "task_closed",
        "visit_required",
        "unknown_task",
        "unknown_unit",
        "invalid",  # another district's community: a transfer stays in the issuing one
        None,
        None,
    ]
    away = answer.json()["results"][5]
    assert "district 640106" in json.dumps(away)
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{intake.url}/readyz")).json()
    assert health["checks"]["tasks"] is True
