"""When intake cannot read the tasks stream up to its end in time, a result for a task it
does not know is answered unavailable (503, Retry-After): the client sends it again."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.task_results import task_result

pytestmark = pytest.mark.integration


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    return {"intake_task_catch_up_s": 1e-6}  # no answer from the stream comes that fast


def test_a_task_not_known_yet_is_answered_retry_later(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    answer = httpx.post(
        f"{intake.url}/v1/events",
        json=[task_result(uuid.uuid4().hex), screening()],
        headers={"authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == str(intake.settings.retry_after_s)
    first, second = answer.json()["results"]
    assert (first["status"], first["code"]) == ("unavailable", "task_not_yet_known")
    assert first["errors"][0]["field"] == "data.task"
    assert second["status"] == "accepted"
