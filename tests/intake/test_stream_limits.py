"""The events stream is bounded: when full, intake refuses (503) and nothing stored is lost."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events, stream_config
from zhibao_shared.subjects import TASKS_STREAM

pytestmark = pytest.mark.integration

LIMIT = 24_000
TASKS_LIMIT = 5_000_000


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    """A tiny events stream, every event its own message; a task stream of its own size;
    no storage budget (a token may store a 30th of the stream a day: 800 bytes here)."""
    return {
        "events_max_bytes": LIMIT,
        "intake_bundle_events": 1,
        "tasks_max_bytes": TASKS_LIMIT,
        "intake_daily_bytes_per_community": 0,
    }


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


def test_the_task_stream_carries_its_configured_limits_and_its_fill_is_reported(
    intake: RunningIntake,
) -> None:
    config = stream_config(intake.nats.url, TASKS_STREAM)
    assert (config.max_bytes, config.max_age) == (TASKS_LIMIT, 90 * 24 * 3600.0)
    deadline = time.monotonic() + 20  # intake reads the streams' fill as it starts
    while not (reported := _stream_gauges(intake.url, TASKS_STREAM)):
        assert time.monotonic() < deadline, "the task stream's fill is not reported"
        time.sleep(0.2)
    assert reported == {"zhibao_stream_max_bytes": TASKS_LIMIT, "zhibao_stream_bytes": 0}


def _stream_gauges(url: str, stream: str) -> dict[str, float]:
    """Intake's byte gauges of one stream, by metric name."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("zhibao_stream_bytes", "zhibao_stream_max_bytes")
        and sample.labels.get("stream") == stream
    }


def test_events_a_filling_stream_stored_are_answered_accepted_the_rest_unavailable(
    intake: RunningIntake,
) -> None:
    """The stream fills in the middle of a batch: what it stored is accepted, what it
    refused is unavailable (nats-py left a refused publish's future pending, and every
    event of that publish was answered unavailable)."""
    token = intake.token(COMMUNITY_A)
    batch = [screening() for _ in range(100)]
    answer = httpx.post(
        f"{intake.url}/v1/events",
        json=batch,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 503  # some unavailable: send again after Retry-After
    statuses = [r["status"] for r in answer.json()["results"]]
    accepted = [event["id"] for event, s in zip(batch, statuses, strict=True) if s == "accepted"]
    assert accepted, "nothing answered accepted"
    assert set(statuses) == {"accepted", "unavailable"}
    assert [e["id"] for _s, e in stored_events(intake.nats.url)] == accepted
