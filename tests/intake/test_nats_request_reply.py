"""The NATS-native submission path: same CloudEvents, same per-item answer."""

from __future__ import annotations

import asyncio
import json

import nats
from nats.aio.msg import Msg

from tests.support.events import COMMUNITY_A, COMMUNITY_B, screening
from tests.support.intake import RunningIntake
from tests.support.nats import community_system
from tests.support.stream import stored_messages
from zhibao_shared.subjects import INTAKE_SUBMIT


def request(url: str, body: object, token: str | None) -> dict[str, object]:
    return asyncio.run(_request(url, body, token))


async def _request(url: str, body: object, token: str | None) -> dict[str, object]:
    client = await community_system(url)
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


async def _misdirected(url: str, token: str, reply_subjects: list[str]) -> list[str]:
    """Submit with each reply subject (a valid token, a valid event); the subjects on which
    anything was then published, and the answer a community system's request still gets."""
    watcher = await nats.connect(url)
    heard: list[str] = []

    async def hear(msg: Msg) -> None:
        heard.append(msg.subject)

    try:
        for subject in reply_subjects:
            await watcher.subscribe(subject, cb=hear)
        sender = await nats.connect(url)
        try:
            for subject in reply_subjects:
                body = json.dumps(screening()).encode()
                headers = {"Authorization": f"Bearer {token}"}
                await sender.publish(INTAKE_SUBMIT, body, reply=subject, headers=headers)
            await sender.flush()
        finally:
            await sender.close()
        # answered in turn (one queue subscriber): once this answer came, the others would have
        answered = await _request(url, [], token)
        heard.append(f"answer {answered['status']}")
        await watcher.flush()
    finally:
        await watcher.close()
    return heard


def test_a_request_naming_a_foreign_reply_subject_is_not_answered_nor_processed(
    intake: RunningIntake,
) -> None:
    """The bus lets intake answer on whatever reply subject a request names: the tasks
    stream's subjects, another service's audit records or inbox. Such a request used to be
    processed and answered there (forged task messages and audit records, with intake's
    rights); now it is counted and dropped."""
    token = intake.token(COMMUNITY_A)
    foreign = ["zhibao.tasks.640106.forged", "zhibao.audit.alerts.x", "_INBOX.aggregator.x"]
    heard = asyncio.run(_misdirected(intake.nats.url, token, foreign))
    assert heard == ["answer 400"], "only the community system's own request was answered"
    assert stored_messages(intake.nats.url) == [], "and none of the events was stored"
