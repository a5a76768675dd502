"""Epidemic points (疫点): declared by a command centre with measures issued as tasks,
listed with their progress, lifted (closing the open tasks), announced without personal
data; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.response.conftest import STREET, Harness, columns_after_upgrade, start
from tests.support.events import COMMUNITY_A, resident_id
from tests.support.postgres import both_backends
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import TASKS_STREAM, task_subject

pytestmark = pytest.mark.integration

MEASURES = [
    {"kind": "disinfect", "applies_to": "compounds", "deadline_hours": 24},
    {"kind": "testing_round", "applies_to": "unit", "deadline_hours": 12},
]


database = both_backends("response")


@pytest.fixture
async def service(tmp_path: Path, nats_server: NatsServer, database: str) -> AsyncIterator[Harness]:
    async for harness in start(tmp_path, nats_server.url, database):
        yield harness


async def declare(service: Harness, who: str = "district", **body: Any) -> Any:
    return await service.client.post(
        "/v1/points",
        json={"unit": COMMUNITY_A, "reason": "确诊病例住所", **body},
        headers=service.auth(who),
    )


async def test_a_point_issues_its_measures_and_lifting_closes_the_open_ones(
    service: Harness,
) -> None:
    answer = await declare(service, compound="枫林湾一期", building="3号楼", measures=MEASURES)
    assert answer.status_code == 201, answer.text
    point = answer.json()
    assert (point["unit"], point["compound"], point["building"]) == (
        COMMUNITY_A,
        "枫林湾一期",
        "3号楼",
    )
    assert point["declared_by"] == "district" and point["lifted"] is False
    tasks = await service.tasks(COMMUNITY_A, "community_a")
    assert sorted((t["kind"], t["compound"]) for t in tasks) == [
        ("disinfect", "枫林湾一期"),
        ("testing_round", None),
    ]
    testing = next(t["id"] for t in tasks if t["kind"] == "testing_round")
    assert (await service.change(testing, "community_a", state="done")).status_code == 200

    listed = await service.client.get(
        "/v1/points", params={"unit": STREET}, headers=service.auth("street_reader")
    )
    assert listed.status_code == 200
    [shown] = listed.json()["points"]
    assert [(m["kind"], m["status"]) for m in shown["measures"]] == [
        ("disinfect", "pending"),
        ("testing_round", "done"),
    ]

    lift = f"/v1/points/{point['id']}/lift"
    lifted = await service.client.post(
        lift, json={"reason": "14天无新增病例"}, headers=service.auth("district")
    )
    assert lifted.status_code == 200, lifted.text
    disinfect = next(t["id"] for t in tasks if t["kind"] == "disinfect")
    assert lifted.json()["tasks_closed"] == [disinfect], "the done task stays done"
    assert (await service.task(disinfect, "community_a"))["state"] == "cancelled"
    again = await service.client.post(lift, json={"reason": "x"}, headers=service.auth("district"))
    assert again.status_code == 409

    await service.tap.wait_for("two point messages", lambda: len(service.tap.bodies("point")) == 2)
    declared, lifted_message = service.tap.bodies("point")
    assert declared["event"] == "point_declared" and lifted_message["event"] == "point_lifted"
    assert set(lifted_message) == {
        "event",
        "point",
        "unit",
        "compound",
        "building",
        "start",
        "declared_at",
        "declared_by",
        "lifted_at",
        "lifted_by",
    }, "labels, times and token names only: no reason text, nobody's personal data"


async def test_a_points_tasks_and_their_closing_are_on_the_stream_before_the_answer(
    service: Harness, nats_server: NatsServer
) -> None:
    """A community's result sent right after a point's answer must find its task on the
    stream intake reads, and after a lift find it cancelled there (the point routes used
    to answer before the outbox published: 10 of 10 declarations here)."""
    bus = await nats.connect(nats_server.url)
    js = bus.jetstream()

    async def last(event: str) -> dict[str, Any]:
        message = await js.get_last_msg(TASKS_STREAM, task_subject(COMMUNITY_A, event))
        body: dict[str, Any] = json.loads(message.data or b"{}")
        return body

    try:
        for n in range(5):
            answer = await declare(service, compound=f"小区{n}", measures=MEASURES[:1])
            assert answer.status_code == 201, answer.text
            [task_id] = answer.json()["tasks_issued"]
            assert (await last("issued"))["task"] == task_id
            lifted = await service.client.post(
                f"/v1/points/{answer.json()['id']}/lift",
                json={"reason": "解除"},
                headers=service.auth("district"),
            )
            assert lifted.status_code == 200, lifted.text
            assert (await last("changed"))["task"] == task_id
            assert (await last("changed"))["state"] == "cancelled"
    finally:
        await bus.close()


async def test_phone_numbers_in_a_points_texts_are_masked_resident_ids_refused(
    service: Harness,
) -> None:
    answer = await declare(
        service,
        compound="枫林湾(联系人13912345678)",
        building="3号楼",
        reason="确诊病例住所，家属电话 139-1234-5678",
    )
    assert answer.status_code == 201, answer.text
    point = answer.json()
    assert point["compound"] == "枫林湾(联系人[phone])"
    assert point["reason"] == "确诊病例住所，家属电话 [phone]"
    lifted = await service.client.post(
        f"/v1/points/{point['id']}/lift",
        json={"reason": "已解除，联系 0951-1234567"},
        headers=service.auth("district"),
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lift_reason"] == "已解除，联系 [phone]"
    await service.tap.wait_for("two point messages", lambda: len(service.tap.bodies("point")) == 2)
    everything = b"".join(data for _, data in service.tap.messages).decode()
    assert "1234" not in everything
    measure = {**MEASURES[0], "description": "联系家属 13912345678"}
    described = await declare(service, compound="阅海湾", measures=[measure])
    assert described.status_code == 201, described.text
    listed = await service.client.get(
        "/v1/points", params={"unit": COMMUNITY_A}, headers=service.auth("district")
    )
    assert "13912345678" not in listed.text and "联系家属 [phone]" in listed.text
    with_id = {**MEASURES[0], "description": f"患者 {resident_id()}"}
    assert (await declare(service, compound="阅海湾", measures=[with_id])).status_code == 422
    for field in ("compound", "building", "reason"):
        refused = await declare(service, **{"compound": "枫林湾", field: f"x{resident_id()}"})
        assert refused.status_code == 422, (field, refused.text)
        assert "resident ID" in refused.text


async def test_who_may_declare_and_what_is_refused(service: Harness) -> None:
    assert (await declare(service, "community_a", compound="枫林湾")).status_code == 403
    assert (await declare(service, "street_reader", compound="枫林湾")).status_code == 403
    assert (await declare(service, "other_district", compound="枫林湾")).status_code == 403
    assert (await declare(service)).status_code == 422, "no compound, no building"
    assert (await declare(service, compound=resident_id())).status_code == 422
    assert (await declare(service, compound="a", reason="x\x00y")).status_code == 422
    far = (service.clock() - timedelta(days=90)).isoformat()
    assert (await declare(service, compound="a", start=far)).status_code == 422
    naive = service.clock().replace(tzinfo=None).isoformat()
    assert (await declare(service, compound="a", start=naive)).status_code == 422
    street = {"unit": STREET, "compound": "a", "reason": "x"}
    answer = await service.client.post("/v1/points", json=street, headers=service.auth("district"))
    assert answer.status_code == 422, "a point lies in a community"

    made = (await declare(service, building="5号楼")).json()
    lift = f"/v1/points/{made['id']}/lift"
    other = await service.client.post(
        lift, json={"reason": "x"}, headers=service.auth("other_district")
    )
    assert other.status_code == 404
    own = await service.client.post(lift, json={"reason": "x"}, headers=service.auth("community_a"))
    assert own.status_code == 403


async def test_a_point_is_lifted_only_at_the_level_that_declared_it_or_above(
    service: Harness,
) -> None:
    """A street may not lift what its district declared (seed studies: concealment
    pressure sits low in the hierarchy); the district and the city may."""

    async def lift(point: dict[str, Any], who: str) -> int:
        answer = await service.client.post(
            f"/v1/points/{point['id']}/lift", json={"reason": "解除"}, headers=service.auth(who)
        )
        return answer.status_code

    by_district = (await declare(service, compound="枫林湾")).json()
    refused = await service.client.post(
        f"/v1/points/{by_district['id']}/lift",
        json={"reason": "street says fine"},
        headers=service.auth("street"),
    )
    assert refused.status_code == 403
    assert "640106" in refused.json()["detail"]
    assert await lift(by_district, "district") == 200
    by_street = (await declare(service, "street", compound="阅海湾")).json()
    assert by_street["declared_by"] == "street"
    assert await lift(by_street, "street") == 200
    by_city = (await declare(service, "city", compound="金凤")).json()
    assert await lift(by_city, "district") == 403
    assert await lift(by_city, "city") == 200


async def test_a_database_of_before_declared_scopes_gains_the_column(tmp_path: Path) -> None:
    """An older database gets ``points.declared_scope`` from 0005 (null: any command
    centre above may lift such a point)."""
    columns = await columns_after_upgrade(
        tmp_path, "points", "declared_scope", "0004_need_task_urgency"
    )
    assert "declared_scope" in columns


async def test_the_city_and_the_province_list_the_points_below_them(service: Harness) -> None:
    """A point declared in a community is listed at the city and the province."""
    declared = (await declare(service, compound="枫林湾一期", building="3号楼")).json()
    for unit, who in (("6401", "city"), ("64", "province_reader")):
        answer = await service.client.get(
            "/v1/points", params={"unit": unit}, headers=service.auth(who)
        )
        assert answer.status_code == 200, answer.text
        assert [p["id"] for p in answer.json()["points"]] == [declared["id"]]
