"""Needs become tasks: each need on the bus is one task (kind need_<category>, due by its
limit, its urgency on every task message), however often it is delivered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.response.conftest import Harness, columns_after_upgrade
from tests.support.care_events import need, published
from tests.support.events import COMMUNITY_A, screening
from tests.support.postgres import both_backends
from zhibao_response.domain.needs import DEFAULT_NEED_LIMITS, parse_need_limits
from zhibao_response.settings import ResponseSettings
from zhibao_shared.care_events import NeedCategory, NeedUrgency, need_task_id
from zhibao_shared.events import bundle_payload, event_identity
from zhibao_shared.subjects import bundle_subject, event_subject

pytestmark = pytest.mark.integration

PID = "cd" * 16


database = both_backends("response")


def on_bus(document: dict[str, Any]) -> bytes:
    """A reported event as intake publishes it."""
    return json.dumps(published(document, PID), ensure_ascii=False).encode()


def task_id_of(document: dict[str, Any]) -> str:
    return need_task_id(event_identity(document["subject"], document["source"], document["id"]))


async def publish(url: str, *messages: tuple[str, bytes, str | None]) -> None:
    bus = await nats.connect(url)
    js = bus.jetstream()
    try:
        for subject, body, msg_id in messages:
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            await js.publish(subject, body, headers=headers)
    finally:
        await bus.drain()


async def test_a_need_delivered_again_and_again_is_one_task(service: Harness) -> None:
    urgent = need(person={"ref": "r-1"}, category="medical", urgency="urgent", compound="枫林湾")
    normal = need(person={"ref": "r-2"}, category="food")
    single = event_subject(COMMUNITY_A, "need")
    bundle = bundle_subject("640106")
    other = json.dumps(screening() | {"reporter": "gate", "receivedat": urgent["time"]}).encode()
    await publish(
        service.settings.nats_url,
        (single, on_bus(urgent), "first"),
        (single, on_bus(urgent), "resent under another message id"),
        (bundle, bundle_payload([other, on_bus(urgent), on_bus(normal)]), None),
    )
    ids = {task_id_of(urgent), task_id_of(normal)}
    await service.eventually(
        "both needs issued",
        lambda: _tasks(service),
        lambda found: {t["id"] for t in found["tasks"]} == ids,
    )
    await service.tap.wait_for("two task_issued messages", lambda: len(_issued(service)) >= 2)
    tasks = {t["id"]: t for t in (await _tasks(service, "community_a"))["tasks"]}
    medical = tasks[task_id_of(urgent)]
    assert (medical["kind"], medical["unit"], medical["person_pid"]) == (
        "need_medical",
        COMMUNITY_A,
        PID,
    )
    raised = datetime.fromisoformat(urgent["time"])
    assert datetime.fromisoformat(medical["due"]) == raised + timedelta(hours=2)
    assert (medical["compound"], medical["urgency"]) == ("枫林湾", "urgent")
    food = tasks[task_id_of(normal)]
    assert datetime.fromisoformat(food["due"]) == datetime.fromisoformat(
        normal["time"]
    ) + timedelta(hours=24)
    # one more need through, so every earlier redelivery has surely been read
    sentinel = need(person={"ref": "r-3"}, category="other")
    await publish(service.settings.nats_url, (single, on_bus(sentinel), "sentinel"))
    await service.tap.wait_for("the sentinel issued", lambda: len(_issued(service)) >= 3)
    messages = _issued(service)
    assert sorted(m["task"] for m in messages) == sorted([*ids, task_id_of(sentinel)])
    urgency = {m["task"]: m["urgency"] for m in messages}
    assert urgency[task_id_of(urgent)] == "urgent"
    assert urgency[task_id_of(normal)] == "normal"


async def test_a_needs_task_is_announced_overdue_with_its_urgency(service: Harness) -> None:
    urgent = need(person={"ref": "r-9"}, category="medicine", urgency="urgent")
    await publish(
        service.settings.nats_url, (event_subject(COMMUNITY_A, "need"), on_bus(urgent), None)
    )
    task = task_id_of(urgent)
    await service.tap.wait_for(
        "the need issued", lambda: any(m["task"] == task for m in _issued(service))
    )
    service.clock.advance(hours=7)  # other urgent needs: 6 h
    await service.tap.wait_for(
        "the need's task overdue",
        lambda: any(m["task"] == task for m in service.tap.bodies("overdue")),
    )
    [overdue] = [m for m in service.tap.bodies("overdue") if m["task"] == task]
    assert (overdue["kind"], overdue["urgency"]) == ("need_medicine", "urgent")


async def _tasks(service: Harness, who: str = "district") -> dict[str, Any]:
    answer = await service.client.get(
        "/v1/tasks", params={"unit": COMMUNITY_A}, headers=service.auth(who)
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _issued(service: Harness) -> list[dict[str, Any]]:
    return [m for m in service.tap.bodies("issued") if m["kind"].startswith("need_")]


def test_the_default_limits_are_those_of_the_contract() -> None:
    limits = parse_need_limits(DEFAULT_NEED_LIMITS)
    hours = {
        (u, c): limits.limit(c, u) / timedelta(hours=1) for u in NeedUrgency for c in NeedCategory
    }
    assert hours[(NeedUrgency.URGENT, NeedCategory.MEDICAL)] == 2
    assert hours[(NeedUrgency.URGENT, NeedCategory.FOOD)] == 6
    assert hours[(NeedUrgency.NORMAL, NeedCategory.MEDICAL)] == 12
    assert hours[(NeedUrgency.NORMAL, NeedCategory.PSYCHOLOGICAL)] == 24


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("urgent=6", "no limit for urgency normal"),
        ("urgent=6,normal=24,urgent.money=1", "unknown category"),
        ("urgent=6,normal=soon", "is not <urgency>"),
        ("urgent=0,normal=24", "positive"),
    ],
)
def test_bad_limits_are_refused_at_start(text: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=says):
        ResponseSettings(data_dir=tmp_path, response_need_limits=text)


async def test_a_database_of_before_needs_gains_the_urgency_column(tmp_path: Path) -> None:
    """A database made before needs existed has no ``urgency`` column until
    0004_need_task_urgency adds it."""
    assert "urgency" in await columns_after_upgrade(tmp_path, "tasks", "urgency", "0003")
