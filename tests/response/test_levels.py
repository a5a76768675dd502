"""Graded response: a declared level issues its playbook's measures as tasks; lifting closes
them; the command centre sees each measure done, late, missing or pending."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.response.conftest import DISTRICT, STREET, Harness, start
from tests.support.events import COMMUNITY_A, resident_id
from tests.support.postgres import both_backends
from zhibao_response.config_files import PlaybookError, parse_playbook
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import NAME_MAX, tokens_table

pytestmark = pytest.mark.integration

PLAYBOOK = """
levels:
  red:
    - {kind: close_gates, applies_to: compounds, deadline_hours: 2}
    - {kind: testing_round, applies_to: unit, deadline_hours: 24}
  orange:
    - {kind: notify_residents, applies_to: unit, deadline_hours: 6}
  yellow:
    - {kind: gate_checks, applies_to: children, deadline_hours: 24}
  blue: []
"""


database = both_backends("response")


@pytest.fixture
def playbook(tmp_path: Path) -> Path:
    path = tmp_path / "playbook.yaml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    return path


@pytest.fixture
async def service(
    tmp_path: Path, nats_server: NatsServer, database: str, playbook: Path
) -> AsyncIterator[Harness]:
    async for harness in start(
        tmp_path, nats_server.url, database, response_playbook_path=playbook
    ):
        yield harness


def rewrite(path: Path, text: str, mtime: float) -> None:
    """Replace the playbook file, with a modification time of its own."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


def test_a_playbook_must_list_every_level_and_valid_measures() -> None:
    with pytest.raises(PlaybookError, match="levels missing: orange, yellow, blue"):
        parse_playbook("levels:\n  red: []\n", "p.yaml")
    with pytest.raises(PlaybookError, match=r"levels\.red\.0\.deadline_hours"):
        parse_playbook("levels:\n  red:\n    - {kind: a_b, applies_to: unit}\n", "p.yaml")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        parse_playbook("levels: [", "p.yaml")
    with pytest.raises(PlaybookError, match="lifted"):
        parse_playbook(
            PLAYBOOK + "  none:\n    - {kind: a_b, applies_to: unit, deadline_hours: 1}\n", "p"
        )


async def declare(service: Harness, who: str = "district", **body: Any) -> dict[str, Any]:
    answer = await service.client.post("/v1/levels", json=body, headers=service.auth(who))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def status(service: Harness, unit: str, who: str = "district") -> dict[str, Any]:
    answer = await service.client.get(f"/v1/levels/{unit}", headers=service.auth(who))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_token_named_before_names_were_limited_still_declares(
    service: Harness,
) -> None:
    """A token whose name is longer than new tokens may have (made before the limit)
    declares a level; the declaration's author is the name's first 200 characters."""
    long_name = "金凤区疫情防控指挥部值班" * 20  # 240 characters
    engine = create_engine(f"sqlite:///{service.settings.data_dir / 'tokens.db'}")
    with engine.begin() as conn:  # as an older release stored it
        renamed = tokens_table.update().where(tokens_table.c.name == "district")
        conn.execute(renamed.values(name=long_name))
    engine.dispose()
    declared = await declare(service, unit=COMMUNITY_A, level="blue", reason="预防")
    assert declared["declared_by"] == long_name[:NAME_MAX]


async def test_a_declarations_reason_and_compounds_have_phone_numbers_masked(
    service: Harness,
) -> None:
    declared = await declare(
        service,
        unit=COMMUNITY_A,
        level="blue",
        reason="密接者家属来电 13912345678",
        compounds=["枫林湾(物业0951-1234567)"],
    )
    assert declared["reason"] == "密接者家属来电 [phone]"
    assert (await status(service, COMMUNITY_A))["reason"] == "密接者家属来电 [phone]"
    tasks = await service.tasks(COMMUNITY_A, "community_a")
    assert {t["compound"] for t in tasks} <= {"枫林湾(物业[phone])", None}
    refused = await service.client.post(
        "/v1/levels",
        json={"unit": COMMUNITY_A, "level": "blue", "reason": f"病例 {resident_id()}"},
        headers=service.auth("district"),
    )
    assert refused.status_code == 422 and "resident ID" in refused.text


async def test_declaring_red_issues_the_measures_and_shows_their_progress(
    service: Harness,
) -> None:
    declared = await declare(
        service,
        unit=COMMUNITY_A,
        level="red",
        reason="confirmed case",
        compounds=["枫林湾", "阅海湾"],
    )
    assert (declared["level"], declared["grade"], declared["declared_by"]) == (
        "red",
        "I",
        "district",
    )
    assert len(declared["tasks_issued"]) == 3  # two compounds' gates, one testing round
    tasks = await service.tasks(COMMUNITY_A, "community_a")
    assert sorted((t["kind"], t["compound"]) for t in tasks) == [
        ("close_gates", "枫林湾"),
        ("close_gates", "阅海湾"),
        ("testing_round", None),
    ]
    gates = [t["id"] for t in tasks if t["kind"] == "close_gates"]
    testing = next(t["id"] for t in tasks if t["kind"] == "testing_round")
    assert [m["status"] for m in (await status(service, COMMUNITY_A))["measures"]] == [
        "pending",
        "pending",
    ]
    assert (await service.change(gates[0], "community_a", state="done")).status_code == 200
    service.clock.advance(hours=3)  # the gates' deadline has passed, one still open
    measures = (await status(service, COMMUNITY_A, "street_reader"))["measures"]
    assert [(m["kind"], m["status"], m["done"], m["missing"]) for m in measures] == [
        ("close_gates", "missing", 1, 1),
        ("testing_round", "pending", 0, 0),
    ]
    assert (await service.change(gates[1], "community_a", state="done")).status_code == 200
    assert (await service.change(testing, "community_a", state="done")).status_code == 200
    measures = (await status(service, COMMUNITY_A))["measures"]
    assert [(m["status"], m["late"]) for m in measures] == [("late", 1), ("done", 0)]


async def test_lifting_a_level_closes_its_open_tasks_and_keeps_the_history(
    service: Harness,
) -> None:
    await declare(service, unit=COMMUNITY_A, level="red", reason="case", compounds=["枫林湾"])
    first = await service.tasks(COMMUNITY_A, "community_a")
    done = first[0]["id"]
    assert (await service.change(done, "community_a", state="done")).status_code == 200
    service.clock.advance(hours=1)
    lowered = await declare(service, unit=COMMUNITY_A, level="orange", reason="7 days clear")
    assert lowered["tasks_closed"] == [first[1]["id"]]
    assert len(lowered["tasks_issued"]) == 1
    service.clock.advance(hours=1)
    lifted = await declare(service, unit=COMMUNITY_A, level="none", reason="14 days clear")
    assert lifted["tasks_issued"] == [] and len(lifted["tasks_closed"]) == 1
    states = sorted(t["state"] for t in await service.tasks(COMMUNITY_A, "community_a"))
    assert states == ["cancelled", "cancelled", "done"]
    shown = await status(service, COMMUNITY_A)
    assert (shown["level"], shown["grade"], shown["measures"]) == ("none", None, [])
    assert [h["level"] for h in shown["history"]] == ["none", "orange", "red"]
    assert [h["reason"] for h in shown["history"]][-1] == "case"
    await service.tap.wait_for(
        "the cancellations",
        lambda: [m["state"] for m in service.tap.bodies("changed")].count("cancelled") == 2,
    )


async def test_the_latest_declaration_counts_even_within_the_same_second(
    service: Harness,
) -> None:
    for level in ("blue", "yellow", "orange", "none", "red"):
        await declare(service, unit=COMMUNITY_A, level=level, reason=level)
    shown = await status(service, COMMUNITY_A)
    assert shown["level"] == "red"
    assert [h["level"] for h in shown["history"]] == ["red", "none", "orange", "yellow", "blue"]
    open_tasks = await service.tasks(COMMUNITY_A, "community_a", state="issued")
    assert [t["kind"] for t in open_tasks] == ["testing_round"]  # red's; the rest closed


async def test_a_community_may_not_lift_or_replace_its_own_level(service: Harness) -> None:
    """The community's operate token (its grid workers' page uses one) lifted the
    district's red and cancelled its measures' tasks (201) before levels were kept to
    the command centres of districts, cities and provinces."""
    red = await declare(service, unit=COMMUNITY_A, level="red", reason="cluster")
    for level in ("none", "blue"):
        answer = await service.client.post(
            "/v1/levels",
            json={"unit": COMMUNITY_A, "level": level, "reason": "we are fine"},
            headers=service.auth("community_a"),
        )
        assert answer.status_code == 403, answer.text
        assert "command centre" in answer.json()["detail"]
    shown = await status(service, COMMUNITY_A)
    assert shown["level"] == "red"
    still_open = await service.tasks(COMMUNITY_A, "district", state="issued")
    assert sorted(t["id"] for t in still_open) == sorted(red["tasks_issued"])


async def test_children_and_scope(service: Harness) -> None:
    declared = await declare(service, unit=STREET, level="yellow", reason="cluster")
    children = {t["unit"] for t in await service.tasks(STREET, "district")}
    assert len(declared["tasks_issued"]) == len(children) > 1
    assert all(unit.startswith(STREET) and len(unit) == 12 for unit in children)
    refused = await service.client.post(
        "/v1/levels",
        json={"unit": DISTRICT, "level": "red", "reason": "x"},
        headers=service.auth("community_a"),
    )
    assert refused.status_code == 403
    compounds_on_street = await service.client.post(
        "/v1/levels",
        json={"unit": STREET, "level": "red", "reason": "x", "compounds": ["a"]},
        headers=service.auth("district"),
    )
    assert compounds_on_street.status_code == 422
    unknown = await service.client.post(
        "/v1/levels",
        json={"unit": "640106999", "level": "red", "reason": "x"},
        headers=service.auth("district"),
    )
    assert unknown.status_code == 422
    assert (
        await service.client.get(f"/v1/levels/{DISTRICT}", headers=service.auth("community_a"))
    ).status_code == 403


async def test_a_bad_playbook_is_refused_and_the_previous_one_kept(
    service: Harness, playbook: Path
) -> None:
    rewrite(playbook, "levels:\n  red:\n    - {kind: close_gates, applies_to: moon}\n", 1)
    shown: dict[str, Any] = {}
    for _ in range(200):
        shown = (await service.client.get("/v1/playbook", headers=service.auth("district"))).json()
        if shown["last_error"]:
            break
        await asyncio.sleep(0.05)
    assert "applies_to" in shown["last_error"] and "deadline_hours" in shown["last_error"]
    declared = await declare(service, unit=COMMUNITY_A, level="orange", reason="r")
    assert len(declared["tasks_issued"]) == 1  # the previous playbook's measure
    leaflets = "blue:\n    - {kind: leaflets, applies_to: unit, deadline_hours: 1}"
    rewrite(playbook, PLAYBOOK.replace("blue: []", leaflets), 2)
    for _ in range(200):
        shown = (await service.client.get("/v1/playbook", headers=service.auth("district"))).json()
        if shown["last_error"] is None:
            break
        await asyncio.sleep(0.05)
    assert shown["playbook"]["levels"]["blue"][0]["kind"] == "leaflets"
    declared = await declare(service, unit=COMMUNITY_A, level="blue", reason="r")
    [task] = [t for t in await service.tasks(COMMUNITY_A, "community_a") if t["kind"] == "leaflets"]
    assert task["id"] in declared["tasks_issued"]


async def test_the_city_declares_a_city_wide_level_as_a_district_declares_its_own(
    service: Harness,
) -> None:
    """Whole-city measures (2020–22): the city's command centre declares for 6401; its
    ``unit`` measures go to the city itself and ``children`` to its districts, as a
    district's go to the district and its streets; the province reads it."""
    red = await declare(service, "city", unit="6401", level="red", reason="全市封控")
    assert len(red["tasks_issued"]) == 1, "the testing round; no compounds named"
    [testing] = await service.tasks("6401", "city", state="issued")
    assert (testing["unit"], testing["kind"]) == ("6401", "testing_round")
    yellow = await declare(service, "city", unit="6401", level="yellow", reason="降级")
    assert yellow["tasks_closed"] == [testing["id"]]
    districts = {t["unit"] for t in await service.tasks("6401", "city", state="issued")}
    assert districts == {"640104", "640105", "640106", "640121", "640122", "640181"}
    shown = await status(service, "6401", "province_reader")
    assert (shown["level"], [h["level"] for h in shown["history"]]) == ("yellow", ["yellow", "red"])
    assert (await status(service, "64", "province_reader"))["level"] == "none"
    assert (await status(service, DISTRICT))["level"] == "none", "only the city's own level"
    await service.tap.wait_for(
        "the city's level messages",
        lambda: (
            [s for s, _ in service.tap.messages if s == "zhibao.tasks.6401.6401.level"] != []
            and len(service.tap.bodies("level")) == 2
        ),
    )
    assert [(m["unit"], m["level"]) for m in service.tap.bodies("level")] == [
        ("6401", "red"),
        ("6401", "yellow"),
    ]
    assert ("zhibao.tasks.6401.6401.issued", testing["id"]) in [
        (s, json.loads(d)["task"]) for s, d in service.tap.messages if s.endswith(".issued")
    ]


async def test_only_a_token_covering_the_city_declares_for_it(service: Harness) -> None:
    for who, unit in (("district", "6401"), ("city", "64"), ("province_reader", "64")):
        refused = await service.client.post(
            "/v1/levels",
            json={"unit": unit, "level": "red", "reason": "x"},
            headers=service.auth(who),
        )
        assert refused.status_code == 403, (who, unit, refused.text)
    assert (
        await service.client.get("/v1/levels/6401", headers=service.auth("district"))
    ).status_code == 403
