"""Registered places through intake: ``data.place`` and the labels become the published
``compound_id`` / ``building_id`` / ``grid_id``; an unknown place id is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.intake.test_nats_request_reply import request
from tests.support.events import COMMUNITY_A, COMMUNITY_B, case, correction, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_shared.events import PublishedCorrection, PublishedScreening, parse_published
from zhibao_shared.places import Place, Places

CE = {"content-type": "application/cloudevents+json"}
COMPOUND = f"{COMMUNITY_A}-C001"
GARDEN = f"{COMMUNITY_A}-C002"
GRID = f"{COMMUNITY_A}-G001"
GRID_2 = f"{COMMUNITY_A}-G002"
BUILDING_3 = f"{COMPOUND}-B003"
ELSEWHERE = f"{COMMUNITY_B}-C001"


@pytest.fixture
def intake_overrides(tmp_path: Path) -> dict[str, Any]:
    """Intake with a places file of its own: two compounds and two grids in community A."""
    rows: list[dict[str, object]] = [
        {"id": GRID, "name": "第1网格", "worker": "网格员 王芳", "households": 380},
        {"id": GRID_2, "name": "第2网格", "worker": "网格员 李强", "households": 410},
        {"id": COMPOUND, "name": "枫林湾", "households": 790},
        {"id": GARDEN, "name": "翠湖花园"},
        {"id": ELSEWHERE, "name": "金凤苑"},
    ]
    rows += [
        {"id": f"{COMPOUND}-B{n:03d}", "name": f"{n}号楼", "grid": GRID if n <= 4 else GRID_2}
        for n in range(1, 9)
    ]
    path = tmp_path / "places.jsonl"
    path.write_text(Places(Place.model_validate(r) for r in rows).to_lines(), encoding="utf-8")
    return {"places_path": path}


def post(intake: RunningIntake, body: object, *scopes: str) -> httpx.Response:
    token = intake.token(*(scopes or (COMMUNITY_A,)))
    return httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", **CE},
        timeout=10,
    )


def published_data(intake: RunningIntake) -> dict[str, dict[str, Any]]:
    """The published events' data by event id."""
    return {event["id"]: event["data"] for _subject, event in stored_events(intake.nats.url)}


def ids(data: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    return data.get("compound_id"), data.get("building_id"), data.get("grid_id")


def test_labels_that_name_a_registered_building_are_published_with_its_ids(
    intake: RunningIntake,
) -> None:
    events = [
        screening(temperature=38.2, compound="枫林湾小区", building="3栋"),
        screening(compound=" 枫林湾 ", building="三号楼"),
        screening(compound="枫林湾", building="#6", grid="第1网格"),
    ]
    assert post(intake, events).status_code == 202
    stored = published_data(intake)
    first = stored[events[0]["id"]]
    assert (first["compound"], first["building"]) == ("枫林湾小区", "3栋"), "labels kept"
    assert ids(first) == (COMPOUND, BUILDING_3, GRID)
    assert ids(stored[events[1]["id"]]) == (COMPOUND, BUILDING_3, GRID)
    assert ids(stored[events[2]["id"]]) == (COMPOUND, f"{COMPOUND}-B006", GRID_2)
    parsed = parse_published(json.dumps({**_envelope(intake, events[0]["id"])}))
    assert isinstance(parsed, PublishedScreening)
    assert parsed.data.building_id == BUILDING_3


def _envelope(intake: RunningIntake, event_id: str) -> dict[str, Any]:
    return next(e for _s, e in stored_events(intake.nats.url) if e["id"] == event_id)


def test_a_place_id_is_published_with_the_places_it_implies(intake: RunningIntake) -> None:
    events = [
        screening(place=BUILDING_3),
        screening(place=COMPOUND, building="5号楼"),
        screening(place=GRID_2, compound="枫林湾"),
        case(person={"ref": "r-17"}, classification="suspected"),
    ]
    events[3]["data"]["place"] = f"{COMPOUND}-B002"
    assert post(intake, events).status_code == 202
    stored = published_data(intake)
    assert ids(stored[events[0]["id"]]) == (COMPOUND, BUILDING_3, GRID)
    assert stored[events[0]["id"]]["place"] == BUILDING_3
    assert ids(stored[events[1]["id"]]) == (COMPOUND, f"{COMPOUND}-B005", GRID_2)
    assert ids(stored[events[2]["id"]]) == (COMPOUND, None, GRID_2)
    assert ids(stored[events[3]["id"]]) == (COMPOUND, f"{COMPOUND}-B002", GRID)


def test_labels_no_registered_place_fits_are_kept_without_ids(intake: RunningIntake) -> None:
    events = [
        screening(compound="新建小区", building="3号楼"),
        screening(compound="枫林湾", building="东门岗亭"),
        screening(building="3号楼"),  # two compounds here: which one's 3号楼?
        screening(),
    ]
    assert post(intake, events).status_code == 202
    stored = published_data(intake)
    assert ids(stored[events[0]["id"]]) == (None, None, None)
    assert stored[events[0]["id"]]["compound"] == "新建小区"
    assert ids(stored[events[1]["id"]]) == (COMPOUND, None, None)
    assert ids(stored[events[2]["id"]]) == (None, None, None)
    assert ids(stored[events[3]["id"]]) == (None, None, None)


@pytest.mark.parametrize(
    ("place", "message"),
    [
        (f"{COMMUNITY_A}-C099", f"place {COMMUNITY_A}-C099 is not registered"),
        (f"{COMPOUND}-B099", f"place {COMPOUND}-B099 is not registered"),
        (ELSEWHERE, f"lies in community {COMMUNITY_B}, not in the event's community"),
    ],
)
def test_a_place_id_not_registered_in_the_community_is_refused(
    intake: RunningIntake, place: str, message: str
) -> None:
    response = post(intake, screening(place=place))
    assert response.status_code == 422
    [result] = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "unknown_place")
    [error] = result["errors"]
    assert error["field"] == "data.place"
    assert message in error["message"]
    assert stored_events(intake.nats.url) == []


def test_a_malformed_place_id_is_invalid(intake: RunningIntake) -> None:
    response = post(intake, screening(place="枫林湾3号楼"))
    assert response.status_code == 422
    [result] = response.json()["results"]
    assert result["code"] == "invalid"
    assert result["errors"][0]["field"] == "data.place"


def test_a_batch_refuses_only_the_event_naming_an_unknown_place(intake: RunningIntake) -> None:
    good, bad = screening(place=BUILDING_3), screening(place=ELSEWHERE)
    response = post(intake, [good, bad])
    assert response.status_code == 207
    assert [(r["status"], r.get("code")) for r in response.json()["results"]] == [
        ("accepted", None),
        ("rejected", "unknown_place"),
    ]
    assert list(published_data(intake)) == [good["id"]]


def test_a_replacement_is_resolved_like_the_event_it_replaces(intake: RunningIntake) -> None:
    original = screening(temperature=38.4, compound="枫林湾", building="3栋")
    moved = correction(
        original,
        "replace",
        data={"temperature_c": 38.4, "site": "gate", "compound": "枫林湾", "building": "7栋"},
    )
    unknown = correction(
        original, "replace", data={"temperature_c": 38.4, "site": "gate", "place": ELSEWHERE}
    )
    response = post(intake, [original, moved, unknown])
    assert [(r["status"], r.get("code")) for r in response.json()["results"]] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "unknown_place"),
    ]
    assert response.json()["results"][2]["errors"][0]["field"] == "data.data.place"
    replacement = _envelope(intake, moved["id"])
    assert ids(replacement["data"]["data"]) == (COMPOUND, f"{COMPOUND}-B007", GRID_2)
    parsed = parse_published(json.dumps(replacement))
    assert isinstance(parsed, PublishedCorrection)


def test_the_nats_path_resolves_and_refuses_places_alike(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    good, bad = screening(compound="枫林湾", building="3号"), screening(place=f"{GRID}9")
    answer = request(intake.nats.url, [good, bad], token)
    results = answer["results"]
    assert isinstance(results, list)
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("rejected", "invalid"),
    ]
    bad["data"]["place"] = f"{COMMUNITY_A}-G077"
    refused = request(intake.nats.url, bad, token)["results"]
    assert isinstance(refused, list)
    assert [r["code"] for r in refused] == ["unknown_place"]
    assert ids(published_data(intake)[good["id"]]) == (COMPOUND, BUILDING_3, GRID)
