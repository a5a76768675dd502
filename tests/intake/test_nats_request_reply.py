"""The NATS-native submission path: same CloudEvents, same per-item answer."""

from __future__ import annotations

import asyncio
import json

import nats

from tests.support.events import COMMUNITY_A, COMMUNITY_B, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_messages
from zhibao_shared.subjects import INTAKE_SUBMIT


def request(url: str, body: object, token: str | None) -> dict[str, object]:
    return asyncio.run(_request(url, body, token))


async def _request(url: str, body: object, token: str | None) -> dict[str, object]:
    client = await nats.connect(url)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = await client.request(
            INTAKE_SUBMIT, json.dumps(body).encode(), timeout=5, headers=headers
        )
        return dict(json.loads(reply.data))
    finally:
        await client.close()


def test_batch_over_nats_gets_per_item_answers(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    event = screening()
    answer = request(intake.nats.url, [event, screening(COMMUNITY_B), event], token)
    assert answer["status"] == 207
    results = answer["results"]
    assert isinstance(results, list)
    statuses = [r["status"] for r in results]
    assert statuses == ["accepted", "rejected", "duplicate"]
    assert len(stored_messages(intake.nats.url)) == 1


def test_nats_submission_without_token_is_refused(intake: RunningIntake) -> None:
    answer = request(intake.nats.url, screening(), None)
    assert answer["status"] == 401
    assert stored_messages(intake.nats.url) == []
