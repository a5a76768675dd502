"""Intake over real HTTP against a real nats-server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats

from tests.support.events import (
    COMMUNITY_A,
    COMMUNITY_B,
    case,
    correction,
    resident_id,
    screening,
)
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events, stored_messages
from zhibao_shared.events import parse_message, parse_published
from zhibao_shared.subjects import EVENTS_STREAM
from zhibao_shared.tokens import Role

CE = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def post(
    intake: RunningIntake,
    token: str,
    body: object,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", **(headers or CE)},
        timeout=10,
    )


def test_event_retried_three_times_is_stored_once(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    event = screening(temperature=37.9)
    answers = [post(intake, token, event) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 202]
    assert [a.json()["results"][0]["status"] for a in answers] == [
        "accepted",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    stored = stored_messages(intake.nats.url)
    assert len(stored) == 1
    subject, payload, headers = stored[0]
    assert subject == f"zhibao.events.640106.{COMMUNITY_A}.screening"
    assert headers["Nats-Msg-Id"] == f"{COMMUNITY_A} {event['source']} {event['id']}"
    published = parse_published(payload)
    assert published.data.temperature_c == 37.9  # type: ignore[union-attr]
    assert published.reporter == token.split("_")[1]


def test_two_communities_systems_with_the_same_ids_never_swallow_each_other(
    intake: RunningIntake,
) -> None:
    """Two vendors' gate devices both calling themselves ``/gate-3`` and numbering from 1
    (or one community's system sending another's ids first): each community's event is
    stored and counted; a retry from the same reporter is still a duplicate."""
    source, event_id = "/gate-3", "1"
    first = screening(COMMUNITY_A, event_id=event_id)
    second = screening(COMMUNITY_B, event_id=event_id)
    first["source"] = second["source"] = source
    a = post(intake, intake.token(COMMUNITY_A), first).json()["results"][0]["status"]
    b = post(intake, intake.token(COMMUNITY_B), second).json()["results"][0]["status"]
    again = post(intake, intake.token(COMMUNITY_B), second).json()["results"][0]["status"]
    assert (a, b, again) == ("accepted", "accepted", "duplicate")
    stored = stored_events(intake.nats.url)
    assert sorted(e["subject"] for _s, e in stored) == sorted([COMMUNITY_A, COMMUNITY_B])
    assert {parse_published(json.dumps(e)).dedup_key for _s, e in stored} == {
        f"{COMMUNITY_A} {source} {event_id}",
        f"{COMMUNITY_B} {source} {event_id}",
    }


def test_raw_resident_id_never_reaches_the_stream(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    number = resident_id()
    events = [
        screening(person={"id_number": number}),
        case(
            person={"id_number": number.lower() if number.endswith("X") else number},
            classification="suspected",
        ),
    ]
    assert post(intake, token, events, BATCH).status_code == 202
    stored = stored_messages(intake.nats.url)
    published = [e for _s, payload, _h in stored for e in parse_message(payload)]  # the contract
    pids = {e.data.person.pid for e in published}  # type: ignore[union-attr]
    assert len(pids) == 1, "one person, one pseudonym across events"
    for _subject, payload, headers in stored:
        assert number.encode() not in payload
        assert number not in json.dumps(headers)
    store_bytes = b"".join(
        p.read_bytes() for p in Path(intake.nats.store_dir).rglob("*") if p.is_file()
    )
    assert number.encode() not in store_bytes
    assert next(iter(pids)).encode() in store_bytes


def test_token_for_one_community_cannot_report_for_another(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    answer = post(intake, token, screening(COMMUNITY_B))
    assert answer.status_code == 403
    result = answer.json()["results"][0]
    assert result["status"] == "rejected" and result["code"] == "forbidden"
    assert stored_messages(intake.nats.url) == []


def test_street_prefix_token_covers_its_communities_only(intake: RunningIntake) -> None:
    token = intake.token("640106001")
    answer = post(intake, token, [screening(COMMUNITY_A), screening(COMMUNITY_B)], BATCH)
    assert answer.status_code == 207
    assert [r["status"] for r in answer.json()["results"]] == ["accepted", "rejected"]


def test_batch_with_one_bad_item_stores_the_good_ones(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    good = [screening(), screening()]
    bad = screening(temperature=52.0)
    answer = post(intake, token, [good[0], bad, good[1]], BATCH)
    assert answer.status_code == 207
    body = answer.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1]["errors"][0]["field"] == "data.temperature_c"
    assert len(stored_events(intake.nats.url)) == 2


def test_field_level_reasons(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    wrong_check = resident_id()[:17] + ("0" if resident_id()[17] != "0" else "1")
    event = screening(person={"id_number": wrong_check}, site="window")
    answer = post(intake, token, event)
    assert answer.status_code == 422
    errors = {e["field"]: e["message"] for e in answer.json()["results"][0]["errors"]}
    assert "check digit" in errors["data.person.id_number"]
    assert "data.site" in errors
    assert wrong_check not in answer.text


def test_unknown_community_is_rejected(intake: RunningIntake) -> None:
    token = intake.token("6401")
    answer = post(intake, token, screening("640106009001"))
    assert answer.status_code == 422
    result = answer.json()["results"][0]
    assert result["code"] == "unknown_unit"
    assert result["errors"] == [{"field": "subject", "message": "not a known community code"}]


def test_missing_unknown_and_revoked_tokens_get_401(intake: RunningIntake) -> None:
    event = screening()
    assert httpx.post(f"{intake.url}/v1/events", json=event).status_code == 401
    assert post(intake, "zb_nope_nope", event).status_code == 401
    token = intake.token(COMMUNITY_A)
    token_id = token.split("_")[1]
    assert intake.tokens.revoke(token_id)
    assert post(intake, token, event).status_code == 401


def test_read_token_cannot_report(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A, role=Role.READ)
    assert post(intake, token, screening()).status_code == 403


def test_oversize_body_and_batch_are_refused_with_413(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    huge = screening(compound="x" * 64)
    huge["padding"] = "y" * (intake.settings.max_body_bytes + 1)
    assert post(intake, token, huge).status_code == 413
    too_many = [screening() for _ in range(intake.settings.max_batch_items + 1)]
    answer = post(intake, token, too_many, BATCH)
    assert answer.status_code == 413
    assert stored_messages(intake.nats.url) == []


def test_malformed_bodies_get_clear_4xx(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    auth = {"authorization": f"Bearer {token}"}
    url = f"{intake.url}/v1/events"
    bad_json = httpx.post(url, content=b"{nope", headers={**auth, **CE})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["detail"]
    bad_utf8 = httpx.post(url, content=b'{"id": "\xff\xfe"}', headers={**auth, **CE})
    assert bad_utf8.status_code == 400 and "UTF-8" in bad_utf8.json()["detail"]
    nested = httpx.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers={**auth, **CE})
    assert nested.status_code in (400, 413)
    wrong_type = httpx.post(url, content=b"<xml/>", headers={**auth, "content-type": "text/xml"})
    assert wrong_type.status_code == 415
    not_array = httpx.post(url, content=json.dumps(screening()).encode(), headers={**auth, **BATCH})
    assert not_array.status_code == 400
    assert httpx.get(f"{intake.url}/healthz").status_code == 200


def test_nats_down_means_503_then_accepted_after_restart(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    intake.nats.stop()
    down = post(intake, token, screening())
    assert down.status_code == 503
    assert down.headers["retry-after"].isdigit()
    [unavailable] = down.json()["results"]
    assert (unavailable["status"], unavailable["code"]) == ("unavailable", "bus_unavailable")
    assert "send it again after Retry-After" in unavailable["errors"][0]["message"]
    assert httpx.get(f"{intake.url}/readyz").status_code == 503
    intake.nats.start()
    intake.wait_ready()
    event = screening()
    assert post(intake, token, event).json()["results"][0]["status"] == "accepted"
    assert len(stored_messages(intake.nats.url)) == 1


def test_metrics_count_outcomes_without_personal_labels(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    number = resident_id()
    event = screening(person={"id_number": number})
    post(intake, token, event)
    post(intake, token, event)
    post(intake, token, screening(temperature=99))
    text = httpx.get(f"{intake.url}/metrics").text
    assert 'zhibao_intake_events_accepted_total{type="zhibao.screening.v1"}' in text
    assert 'zhibao_intake_events_duplicate_total{type="zhibao.screening.v1"}' in text
    assert 'zhibao_intake_events_rejected_total{reason="invalid"}' in text
    assert "zhibao_intake_publish_seconds_bucket" in text
    assert number not in text


def test_openapi_documents_the_events_endpoint(intake: RunningIntake) -> None:
    spec = httpx.get(f"{intake.url}/openapi.json").json()
    assert "/v1/events" in spec["paths"]
    assert httpx.get(f"{intake.url}/docs").status_code == 200


def test_a_day_not_begun_yet_cannot_be_closed(intake: RunningIntake) -> None:
    """A community closed tomorrow, and a day six months ahead, as on-time zero reports
    (202), lifting its on-time rate and hiding days it had not lived yet. The day a report
    closes may not be later than the day of its ``time`` in the district's zone; a
    correction's replacement likewise."""
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()

    def close(day: date) -> dict[str, Any]:
        report = screening()
        report["type"] = "zhibao.daily_report.v1"
        report["time"] = now.isoformat()
        report["data"] = {"date": day.isoformat(), "zero": True}
        return report

    closed_today = close(today)
    batch = [
        closed_today,
        close(today + timedelta(days=1)),
        close(today + timedelta(days=176)),
        correction(
            closed_today, "replace", data={"date": f"{today + timedelta(days=1)}", "zero": True}
        ),
    ]
    answer = post(intake, intake.token(COMMUNITY_A), batch)
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    assert [r["errors"][0]["field"] for r in results[1:]] == [
        "data.date",
        "data.date",
        "data.data.date",
    ]


def test_intake_is_not_ready_while_the_events_stream_is_gone(intake: RunningIntake) -> None:
    """Its readiness said the stream was there from the moment it was declared at start:
    an events stream an operator deleted left intake "ready" while it answered every
    event 503. It is now asked for at each check."""
    assert httpx.get(f"{intake.url}/readyz").status_code == 200
    asyncio.run(_delete_events_stream(intake.nats.url))
    gone = httpx.get(f"{intake.url}/readyz")
    assert gone.status_code == 503
    assert gone.json()["checks"]["stream"] is False, gone.text


async def _delete_events_stream(url: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(EVENTS_STREAM)
    finally:
        await client.close()
