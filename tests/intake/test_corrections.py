"""Corrections through intake: accepted in scope, pseudonymised like the original, refused
with a specific code when malformed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.intake.test_nats_request_reply import request
from tests.support.events import COMMUNITY_A, COMMUNITY_B, case, correction, resident_id, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_shared.events import PublishedCaseReplacement, PublishedCorrection, parse_published

CE = {"content-type": "application/cloudevents+json"}


def post(intake: RunningIntake, token: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", **CE},
        timeout=10,
    )


def statuses(response: httpx.Response) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("code")) for r in response.json()["results"]]


def test_a_replacement_is_stored_with_the_originals_pseudonym(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    person = {"id_number": resident_id(seq=77)}
    original = case(person=person, classification="suspected")
    fix = correction(original, "replace", data={"person": person, "classification": "excluded"})
    answers = [post(intake, token, original), post(intake, token, fix), post(intake, token, fix)]
    assert [statuses(a) for a in answers] == [
        [("accepted", None)],
        [("accepted", None)],
        [("duplicate", None)],
    ]
    stored = dict((e["type"], (subject, e)) for subject, e in stored_events(intake.nats.url))
    subject, published = stored["zhibao.correction.v1"]
    assert subject == f"zhibao.events.640106.{COMMUNITY_A}.correction"
    assert person["id_number"] not in json.dumps(published)
    event = parse_published(json.dumps(published))
    assert isinstance(event, PublishedCorrection)
    assert isinstance(event.data, PublishedCaseReplacement)
    original_pid = stored["zhibao.case.v1"][1]["data"]["person"]["pid"]
    assert event.data.data.person.pid == original_pid
    assert event.corrected_key == f"{COMMUNITY_A} {original['source']} {original['id']}"
    assert event.reporter == token.split("_")[1]


def _malformed(kind: str) -> dict[str, Any]:
    original = screening(temperature=38.1)
    fix = correction(original)
    body = fix["data"]
    if kind == "task_result":
        body |= {"action": "replace", "type": "zhibao.task_result.v1", "data": {"task": "0" * 32}}
    elif kind == "replace_without_type":
        body |= {"action": "replace", "data": {"temperature_c": 36.5, "site": "gate"}}
    elif kind == "replace_without_data":
        body |= {"action": "replace", "type": "zhibao.screening.v1"}
    elif kind == "retract_with_data":
        body |= {"data": {"temperature_c": 36.5, "site": "gate"}}
    elif kind == "data_of_another_type":
        body |= {
            "action": "replace",
            "type": "zhibao.screening.v1",
            "data": {"person": {"ref": "r-1"}, "classification": "confirmed"},
        }
    elif kind == "no_reason":
        del body["reason"]
    elif kind == "long_reason":
        body["reason"] = "x" * 501
    elif kind == "reason_with_id":
        body["reason"] = f"wrong resident, meant {resident_id(seq=12)}"
    return fix


@pytest.mark.parametrize(
    ("kind", "code", "field"),
    [
        ("task_result", "not_correctable", "data"),
        ("replace_without_type", "correction_form", "data"),
        ("replace_without_data", "correction_form", "data"),
        ("retract_with_data", "correction_form", "data"),
        ("data_of_another_type", "correction_data", "data.data.temperature_c"),
        ("no_reason", "correction_reason", "data.reason"),
        ("long_reason", "correction_reason", "data.reason"),
        ("reason_with_id", "correction_reason", "data.reason"),
    ],
)
def test_a_malformed_correction_is_refused_with_its_code(
    intake: RunningIntake, kind: str, code: str, field: str
) -> None:
    response = post(intake, intake.token(COMMUNITY_A), _malformed(kind))
    assert response.status_code == 422
    [result] = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", code)
    assert field in [e["field"] for e in result["errors"]]
    assert resident_id(seq=12) not in response.text
    assert stored_events(intake.nats.url) == []


def test_a_token_may_not_correct_another_communitys_event(intake: RunningIntake) -> None:
    original = screening(COMMUNITY_B, temperature=38.4)
    assert statuses(post(intake, intake.token(COMMUNITY_B), original)) == [("accepted", None)]
    response = post(intake, intake.token(COMMUNITY_A), correction(original))
    assert response.status_code == 403
    assert statuses(response) == [("rejected", "forbidden")]
    assert [e["type"] for _s, e in stored_events(intake.nats.url)] == ["zhibao.screening.v1"]


def test_a_correction_over_nats_is_answered_as_over_http(intake: RunningIntake) -> None:
    original = screening(temperature=38.0)
    fix = correction(original, "replace", data={"temperature_c": 36.8, "site": "gate"})
    answer = request(intake.nats.url, [original, fix], intake.token(COMMUNITY_A))
    assert answer["status"] == 202
    stored = [e for _s, e in stored_events(intake.nats.url)]
    assert [e["data"].get("data", {}).get("temperature_c") for e in stored] == [None, 36.8]
