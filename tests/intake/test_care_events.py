"""Key persons and needs through intake: accepted in scope, the person pseudonymised and
nothing else personal on the bus, registered places resolved, never correctable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.care_events import key_person, need
from tests.support.events import COMMUNITY_A, COMMUNITY_B, correction, resident_id
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_shared.care_events import PublishedKeyPerson, PublishedNeed
from zhibao_shared.events import parse_published
from zhibao_shared.places import Place, Places

CE = {"content-type": "application/cloudevents+json"}
COMPOUND = f"{COMMUNITY_A}-C001"
GRID = f"{COMMUNITY_A}-G001"
BUILDING_3 = f"{COMPOUND}-B003"


@pytest.fixture
def intake_overrides(tmp_path: Path) -> dict[str, Any]:
    """Intake with a places file of its own: one compound of four buildings, one grid."""
    rows: list[dict[str, object]] = [
        {"id": GRID, "name": "第1网格", "worker": "网格员 王芳", "households": 380},
        {"id": COMPOUND, "name": "枫林湾", "households": 790},
        {"id": f"{COMMUNITY_B}-C001", "name": "金凤苑"},
    ]
    rows += [{"id": f"{COMPOUND}-B{n:03d}", "name": f"{n}号楼", "grid": GRID} for n in range(1, 5)]
    path = tmp_path / "places.jsonl"
    path.write_text(Places(Place.model_validate(r) for r in rows).to_lines(), encoding="utf-8")
    return {"places_path": path}


def post(intake: RunningIntake, body: object, *scopes: str) -> httpx.Response:
    token = intake.token(*(scopes or (COMMUNITY_A,)))
    return httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={"authorization": f"Bearer {token}", **CE},
        timeout=10,
    )


def results(answer: httpx.Response) -> list[tuple[str, str | None, list[str]]]:
    return [
        (r["status"], r.get("code"), [e["field"] for e in r.get("errors", [])])
        for r in answer.json()["results"]
    ]


def test_a_key_person_and_their_need_travel_pseudonymised(intake: RunningIntake) -> None:
    number = resident_id(seq=901)
    person = {"id_number": number}
    registered = key_person(person=person, category="dialysis", compound="枫林湾", building="3栋")
    needed = need(person=person, category="medical", urgency="urgent", place=BUILDING_3)
    answer = post(intake, [registered, needed])
    assert answer.status_code == 202, answer.text
    stored = {e["id"]: e for _subject, e in stored_events(intake.nats.url)}
    assert number not in json.dumps(stored, ensure_ascii=False)
    key = parse_published(json.dumps(stored[registered["id"]]))
    got_need = parse_published(json.dumps(stored[needed["id"]]))
    assert isinstance(key, PublishedKeyPerson) and isinstance(got_need, PublishedNeed)
    assert key.data.person.pid == got_need.data.person.pid
    assert (key.data.category.value, key.data.building, key.data.building_id) == (
        "dialysis",
        "3栋",
        BUILDING_3,
    )
    assert (key.data.compound_id, key.data.grid_id) == (COMPOUND, GRID)
    assert (got_need.data.urgency.value, got_need.data.building_id) == ("urgent", BUILDING_3)
    assert got_need.reporter and got_need.task_kind == "need_medical"


def test_care_events_alone_go_on_their_type_subject(intake: RunningIntake) -> None:
    needed = need(person={"ref": "local-5"}, category="food")
    assert post(intake, needed).status_code == 202
    [(subject, event)] = stored_events(intake.nats.url)
    assert subject == f"zhibao.events.640106.{COMMUNITY_A}.need"
    assert event["data"] == {
        "person": event["data"]["person"],
        "category": "food",
        "urgency": "normal",
    }


def test_care_events_are_refused_naming_the_rule(intake: RunningIntake) -> None:
    person = {"ref": "local-6"}
    with_note = need(person=person)
    with_note["data"]["note"] = "独居, 女儿电话 13912345678"
    elsewhere = need(person=person, place=f"{COMMUNITY_B}-C001")
    answer = post(
        intake,
        [
            need(COMMUNITY_B, person=person),
            key_person(person=person, category="retired"),
            with_note,
            elsewhere,
            need(person=person, urgency="whenever"),
        ],
    )
    assert answer.status_code == 422, answer.text
    assert results(answer) == [
        ("rejected", "forbidden", ["subject"]),
        ("rejected", "invalid", ["data.category"]),
        ("rejected", "invalid", ["data.note"]),
        ("rejected", "unknown_place", ["data.place"]),
        ("rejected", "invalid", ["data.urgency"]),
    ]
    assert stored_events(intake.nats.url) == []


def test_a_need_cannot_be_corrected(intake: RunningIntake) -> None:
    needed = need(person={"ref": "local-7"})
    replace = correction(
        needed, "replace", data={"person": {"ref": "local-7"}, "category": "medicine"}
    )
    answer = post(intake, [needed, replace])
    assert results(answer) == [
        ("accepted", None, []),
        ("rejected", "not_correctable", ["data"]),
    ]
