"""The key-person and need events' contract: what is accepted, refused, and how it travels."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.care_events import key_person, need, published
from tests.support.events import resident_id
from zhibao_shared.care_events import (
    KeyPersonAction,
    KeyPersonCategory,
    NeedCategory,
    NeedUrgency,
    PublishedKeyPerson,
    PublishedNeed,
    ReportedKeyPerson,
    ReportedNeed,
    need_category_of,
)
from zhibao_shared.events import (
    PUBLISHED_EVENT,
    REPORTED_EVENT,
    EventType,
    bundle_payload,
    parse_message,
    published_payload,
)
from zhibao_shared.subjects import event_subject, type_filters
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState, task_message

COMMUNITY = "640106001001"


def test_a_key_person_is_registered_with_category_and_place() -> None:
    document = key_person(
        person={"id_number": resident_id()},
        category="dialysis",
        place=f"{COMMUNITY}-C001-B003",
        compound="枫林湾",
        building="3号楼",
    )
    event = REPORTED_EVENT.validate_python(document)
    assert isinstance(event, ReportedKeyPerson)
    assert event.type is EventType.KEY_PERSON
    assert event.data.category is KeyPersonCategory.DIALYSIS
    assert event.data.action is KeyPersonAction.REGISTER
    assert event.data.place == f"{COMMUNITY}-C001-B003"
    assert event_subject(event.subject, EventType.KEY_PERSON.short).endswith(
        f".{COMMUNITY}.keyperson"
    )


def test_a_need_names_person_category_and_urgency() -> None:
    event = REPORTED_EVENT.validate_python(
        need(person={"ref": "local-9"}, category="medical", urgency="urgent", grid="第3网格")
    )
    assert isinstance(event, ReportedNeed)
    assert event.data.category is NeedCategory.MEDICAL
    assert event.data.urgency is NeedUrgency.URGENT
    assert event_subject(event.subject, EventType.NEED.short).endswith(f".{COMMUNITY}.need")


def test_a_need_without_urgency_is_normal() -> None:
    document = need(person={"ref": "local-9"})
    del document["data"]["urgency"]
    event = REPORTED_EVENT.validate_python(document)
    assert isinstance(event, ReportedNeed) and event.data.urgency is NeedUrgency.NORMAL


@pytest.mark.parametrize(
    ("builder", "change", "field"),
    [
        (key_person, {"category": "vip"}, "category"),
        (key_person, {"action": "update"}, "action"),
        (key_person, {"person": None}, "person"),
        (need, {"category": "money"}, "category"),
        (need, {"urgency": "asap"}, "urgency"),
        (need, {"note": "needs insulin, lives alone"}, "note"),
        (need, {"place": "640106001001-X001"}, "place"),
        (need, {"building": f"{resident_id()}"}, "building"),
    ],
)
def test_bad_care_data_names_the_field(builder: Any, change: dict[str, Any], field: str) -> None:
    document = builder(person={"ref": "r-1"})
    document["data"].update(change)
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    assert any(error["loc"][-1] == field for error in info.value.errors())


def test_the_published_form_carries_a_pseudonym_and_registered_places_only() -> None:
    document = published(need(person={"ref": "r-1"}, category="food", place=f"{COMMUNITY}-G002"))
    document["data"] |= {"grid_id": f"{COMMUNITY}-G002"}
    event = PUBLISHED_EVENT.validate_python(document)
    assert isinstance(event, PublishedNeed)
    assert event.data.person.pid == "ab" * 16
    assert event.data.grid_id == f"{COMMUNITY}-G002"
    assert event.task_kind == "need_food"
    raw = dict(document, data=dict(document["data"], person={"id_number": resident_id()}))
    with pytest.raises(ValidationError):
        PUBLISHED_EVENT.validate_python(raw)


def test_care_events_travel_alone_and_in_bundles() -> None:
    registered = PUBLISHED_EVENT.validate_python(
        published(key_person(person={"ref": "r-2"}, category="pregnant"))
    )
    needed = PUBLISHED_EVENT.validate_python(published(need(person={"ref": "r-2"})))
    bundle = bundle_payload([published_payload(registered), published_payload(needed)])
    decoded = parse_message(bundle)
    assert [type(e) for e in decoded] == [PublishedKeyPerson, PublishedNeed]
    assert json.loads(published_payload(needed))["type"] == "zhibao.need.v1"


@pytest.mark.parametrize("kind", ["zhibao.keyperson.v1", "zhibao.need.v1"])
def test_care_events_are_not_correctable(kind: str) -> None:
    document = need(person={"ref": "r-3"})
    document |= {
        "type": "zhibao.correction.v1",
        "data": {
            "corrects": {"source": "/x", "id": "need-1"},
            "reason": "wrong person",
            "action": "replace",
            "type": kind,
            "data": {"person": {"ref": "r-4"}, "category": "food"},
        },
    }
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    assert "correction_not_correctable" in {e["type"] for e in info.value.errors()}


def test_each_need_category_has_its_task_kind() -> None:
    assert [need_category_of(f"need_{c}") for c in NeedCategory] == list(NeedCategory)
    assert need_category_of("verify_contact") is None
    assert need_category_of("need_money") is None


def test_a_task_message_says_a_needs_urgency_and_nothing_for_other_tasks() -> None:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "task": "0" * 32,
        "unit": COMMUNITY,
        "due": now,
        "state": TaskState.ISSUED,
        "at": now,
    }
    urgent = task_message(
        TaskEvent.ISSUED, kind="need_medical", pid="ab" * 16, urgency="urgent", **fields
    )
    other = task_message(TaskEvent.ISSUED, kind="verify_contact", pid=None, **fields)
    assert TaskMessage.model_validate_json(urgent.model_dump_json()).urgency == "urgent"
    assert other.urgency is None
    with pytest.raises(ValidationError):
        TaskMessage.model_validate(urgent.model_dump() | {"urgency": "soon"})


def test_type_filters_reach_the_type_alone_and_in_bundles() -> None:
    assert type_filters("need") == ("zhibao.events.*.*.need", "zhibao.events.*.bundle")
    assert type_filters("keyperson", ["640106"]) == (
        "zhibao.events.640106.*.keyperson",
        "zhibao.events.640106.bundle",
    )


@pytest.mark.parametrize("module", ["zhibao_shared.care_events", "zhibao_shared.events"])
def test_either_module_may_be_imported_first(module: str) -> None:
    code = f"import {module}; from zhibao_shared.events import PublishedEvent; print('ok')"
    done = subprocess.run(  # a fresh interpreter: the import order is the point
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
