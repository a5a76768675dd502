"""Refusals name the field and the rule, never the submitted value.

For each kind of rejection (unknown type, bad subject, bad time, extra fields,
bad person, an ID number as event id or as the name of a field, a wrong content
type) an event carrying a resident ID number is posted over HTTP and over NATS
request-reply. The number (in any spelling) is in none of the answers, the
audit records or the log lines; each answer still says which field broke
which rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.security.privacy_corpus import audit_lines, leaked, stream_surfaces, wait_until
from tests.support.events import COMMUNITY_A, case, resident_id, screening
from tests.support.intake import RunningIntake
from tests.support.nats import community_system
from zhibao_shared.subjects import INTAKE_SUBMIT

NUMBER = resident_id("110105", seq=417)
DISGUISED = "\uff11\u200b" + NUMBER[1:6] + "-" + NUMBER[6:14] + " " + NUMBER[14:].lower()
WRONG_CHECK = NUMBER[:17] + ("1" if NUMBER[17] != "1" else "2")


def _with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    event = case(person={"id_number": NUMBER}, classification="confirmed")
    change(event)
    return event


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key]
        target[last] = value

    return change


#: (rejection, the event, the field the answer names)
REJECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown type", _with(_set("type", f"zhibao.{NUMBER}.v1")), "type"),
    ("bad subject", _with(_set("subject", NUMBER)), "subject"),
    ("bad time", _with(_set("time", f"{NUMBER}T00:00:00Z")), "time"),
    ("extra field", _with(_set("data.name", NUMBER)), "data.name"),
    ("field named by a number", _with(_set(f"data.{DISGUISED}", 1)), "data.[redacted-id]"),
    (
        "extra person field",
        _with(_set("data.person.passport", NUMBER)),
        "data.person.id_number.passport",
    ),
    ("mistyped number", _with(_set("data.person.id_number", WRONG_CHECK)), "data.person.id_number"),
    ("number as event id", _with(_set("id", f"case-{DISGUISED}")), "id"),
    ("number as source", _with(_set("source", f"/his/{NUMBER}")), "source"),
    ("number as label", _with(_set("data.compound", DISGUISED)), "data.compound"),
    ("bad person form", _with(_set("data.person", {"card": NUMBER})), "data.person"),
]
SECRETS = [NUMBER, WRONG_CHECK]


def _post_http(intake: RunningIntake, token: str, body: bytes, content_type: str) -> bytes:
    headers = {"authorization": f"Bearer {token}", "content-type": content_type}
    answer = httpx.post(f"{intake.url}/v1/events", content=body, headers=headers, timeout=20)
    assert 400 <= answer.status_code < 500, answer.text
    return answer.content


async def _request(url: str, token: str, body: bytes) -> bytes:
    client = await community_system(url)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        reply = await client.request(INTAKE_SUBMIT, body, timeout=10, headers=headers)
        return reply.data
    finally:
        await client.close()


@pytest.mark.parametrize(("kind", "event", "field"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_refused_event_is_answered_without_its_values(
    intake: RunningIntake,
    capfd: pytest.CaptureFixture[str],
    kind: str,
    event: dict[str, Any],
    field: str,
) -> None:
    token = intake.token(COMMUNITY_A)
    body = json.dumps(event, ensure_ascii=False).encode()
    answers = {
        "http": _post_http(intake, token, body, "application/cloudevents+json"),
        "nats": asyncio.run(_request(intake.nats.url, token, body)),
    }
    for channel, answer in answers.items():
        errors = json.loads(answer)["results"][0]["errors"]
        assert field in [e["field"] for e in errors], f"{kind} over {channel}: {errors}"
        assert all(e["message"] for e in errors)
    wait_until("both audit records", lambda: len(asyncio.run(audit_lines(intake.nats.url))) >= 2)
    out, err = capfd.readouterr()
    surfaces = {
        **{f"answer {k}": v for k, v in answers.items()},
        **asyncio.run(stream_surfaces(intake.nats.url)),
        "log stdout": out.encode(),
        "log stderr": err.encode(),
    }
    assert leaked(surfaces, SECRETS) == []


@pytest.mark.parametrize(
    # a token's refusals of whole requests are counted per window: a short one here
    "intake_overrides",
    [{"audit_refusal_window_s": 1.0}],
    indirect=True,
)
def test_a_wrong_content_type_is_not_repeated(
    intake: RunningIntake, capfd: pytest.CaptureFixture[str]
) -> None:
    token = intake.token(COMMUNITY_A)
    body = json.dumps(screening()).encode()
    answer = _post_http(intake, token, body, f"text/{NUMBER}")
    assert b"content type" in answer
    wait_until("the audit record", lambda: len(asyncio.run(audit_lines(intake.nats.url))) >= 1)
    out, err = capfd.readouterr()
    surfaces = {"answer": answer, "log": (out + err).encode()}
    surfaces |= asyncio.run(stream_surfaces(intake.nats.url))
    assert leaked(surfaces, SECRETS) == []
