"""Rate limiting per token, and the append-only accountability trail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import APIError

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from zhibao_shared.subjects import AUDIT_ALL, AUDIT_STREAM


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    # Refusals without a valid token are audited per window (of 1 s here) with a count.
    return {"rate_limit_events_per_s": 0.5, "rate_limit_burst": 200, "audit_refusal_window_s": 1.0}


def post(intake: RunningIntake, token: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{intake.url}/v1/events",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_noisy_token_gets_429_and_others_are_served(intake: RunningIntake) -> None:
    noisy, quiet = intake.token(COMMUNITY_A), intake.token(COMMUNITY_A)
    assert post(intake, noisy, [screening() for _ in range(200)]).status_code == 202
    refused = post(intake, noisy, [screening() for _ in range(10)])
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "rate limit" in refused.json()["detail"]
    assert post(intake, quiet, screening()).status_code == 202


async def audit_records(url: str) -> list[dict[str, Any]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        count = (await js.stream_info(AUDIT_STREAM)).state.messages
        sub = await js.pull_subscribe(AUDIT_ALL, stream=AUDIT_STREAM)
        messages = await sub.fetch(count, timeout=5) if count else []
        return [json.loads(line) for m in messages for line in m.data.splitlines()]
    finally:
        await client.close()


async def _try_to_erase(url: str) -> list[str]:
    client = await nats.connect(url)
    refusals = []
    try:
        js = client.jetstream()
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: js.delete_msg(AUDIT_STREAM, 1),
            lambda: js.purge_stream(AUDIT_STREAM),
        ]
        for attempt in attempts:
            try:
                await attempt()
            except APIError as exc:
                refusals.append(str(exc.description))
        return refusals
    finally:
        await client.close()


def wait_for_records(url: str, count: int) -> list[dict[str, Any]]:
    """Audit records are flushed in small batches: wait for the expected ones."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = asyncio.run(audit_records(url))
        if len(records) >= count:
            return records
        time.sleep(0.1)
    raise AssertionError(f"expected {count} audit records")


def test_every_submission_is_attributed_and_the_trail_cannot_be_erased(
    intake: RunningIntake,
) -> None:
    token = intake.token(COMMUNITY_A)
    token_id = token.split("_")[1]
    event = screening()
    post(intake, token, [event, screening(temperature=99)])
    post(intake, "zb_forged_token", event)
    records = wait_for_records(intake.nats.url, 2)
    submission = next(r for r in records if r["token"] == token_id)
    assert submission["channel"] == "http" and submission["status"] == 207
    first = submission["events"][0]
    assert (first["id"], first["subject"], first["status"]) == (
        event["id"],
        COMMUNITY_A,
        "accepted",
    )
    assert submission["events"][1]["status"] == "rejected"
    refused = next(r for r in records if r["status"] == 401)
    assert refused["token"] is None and refused["remote"] == "127.0.0.1"
    assert (refused["reason"], refused["count"]) == ("unauthenticated", 1)
    assert len(asyncio.run(_try_to_erase(intake.nats.url))) == 2
    assert len(asyncio.run(audit_records(intake.nats.url))) == len(records)


def test_a_tokens_refused_bodies_are_counted_by_what_was_wrong(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    for body in (b"{not json", b"[]", b"\xff\xfe"):
        answer = httpx.post(f"{intake.url}/v1/events", content=body, headers=headers, timeout=10)
        assert answer.status_code == 400
    records = wait_for_records(intake.nats.url, 3)
    tallies = sorted((r["reason"], r["status"], r["count"]) for r in records)
    assert tallies == [("batch", 400, 1), ("encoding", 400, 1), ("json", 400, 1)]
