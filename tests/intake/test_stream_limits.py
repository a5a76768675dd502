"""The events stream is bounded: when full, intake refuses (503) and nothing stored is lost."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events

pytestmark = pytest.mark.integration

LIMIT = 24_000


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    """A tiny events stream, every event its own message."""
    return {"events_max_bytes": LIMIT, "intake_bundle_events": 1}


def test_a_full_events_stream_refuses_new_events_and_keeps_every_stored_one(
    intake: RunningIntake,
) -> None:
    token = intake.token(COMMUNITY_A)
    accepted: list[str] = []
    statuses: list[int] = []
    for _ in range(200):
        event = screening()
        answer = httpx.post(
            f"{intake.url}/v1/events",
            content=json.dumps(event).encode(),
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/cloudevents+json",
            },
            timeout=10,
        )
        statuses.append(answer.status_code)
        if answer.status_code == 503:
            break
        accepted.append(event["id"])
    assert statuses[-1] == 503, "the stream never filled"
    assert len(accepted) > 5
    stored = [e["id"] for _s, e in stored_events(intake.nats.url)]
    assert stored == accepted, "a stored event was dropped to make room"

    metrics = httpx.get(f"{intake.url}/metrics", timeout=5).text
    assert f'zhibao_stream_max_bytes{{stream="ZHIBAO_EVENTS"}} {float(LIMIT)}' in metrics
    assert 'zhibao_stream_bytes{stream="ZHIBAO_EVENTS"}' in metrics
