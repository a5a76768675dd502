"""The event contract: what is accepted, what is refused and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.events import case, resident_id, screening
from tests.support.task_results import task_result
from zhibao_shared.events import (
    MAX_EVENT_AGE,
    PUBLISHED_EVENT,
    REPORTED_EVENT,
    EventType,
    IsolationKind,
    PublishedScreening,
    PublishedTaskResult,
    ReportedTaskResult,
    TaskMeasure,
    TaskMethod,
    TaskOutcome,
    bundle_payload,
    parse_message,
)


def errors_of(document: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_each_event_type_is_accepted() -> None:
    person = {"id_number": resident_id()}
    isolation = dict(
        screening(),
        type="zhibao.isolation.v1",
        data={"person": person, "action": "start", "kind": "home", "until": "2026-12-09"},
    )
    daily = dict(
        screening(),
        type="zhibao.daily_report.v1",
        data={"date": "2026-11-24", "zero": False, "counts": {"screenings": 312}},
    )
    documents = [
        screening(person=person, symptoms=["cough"], travel_from_risk_area=True),
        case(person={"ref": "local-17"}, classification="confirmed"),
        isolation,
        daily,
    ]
    types = [REPORTED_EVENT.validate_python(d).type for d in documents]
    assert types == [
        EventType.SCREENING,
        EventType.CASE,
        EventType.ISOLATION,
        EventType.DAILY_REPORT,
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"temperature_c": 29.9}, "temperature_c"),
        ({"temperature_c": 45.1}, "temperature_c"),
        ({"site": "window"}, "site"),
        ({"symptoms": ["sneezing"]}, "symptoms"),
        ({"temprature_c": 36.5}, "temprature_c"),
    ],
)
def test_bad_screening_data_names_the_field(change: dict[str, Any], field: str) -> None:
    document = screening()
    document["data"].update(change)
    assert any(field in loc for loc, _type in errors_of(document))


@pytest.mark.parametrize(
    "when",
    [
        datetime(9999, 1, 1, tzinfo=UTC),
        datetime.now(UTC) + timedelta(hours=1),
        datetime(2019, 1, 1, tzinfo=UTC),
    ],
)
def test_implausible_times_are_refused(when: datetime) -> None:
    assert any("time" in loc for loc, _ in errors_of(screening(when=when)))


def test_time_needs_an_offset() -> None:
    document = screening()
    document["time"] = "2026-11-25T08:00:00"
    assert any("time" in loc for loc, _ in errors_of(document))


def test_subject_must_be_a_community_code() -> None:
    assert any("subject" in loc for loc, _ in errors_of(screening("640106001")))


def test_case_requires_a_person_in_a_known_form() -> None:
    document = case(person={"name": "张三"}, classification="confirmed")
    assert errors_of(document) == [(("zhibao.case.v1", "data", "person"), "person_form")]


def test_published_form_refuses_raw_identifiers() -> None:
    document = screening(person={"id_number": resident_id()})
    document.update(reporter="tok1", receivedat=datetime.now(UTC).isoformat())
    with pytest.raises(ValidationError):
        PUBLISHED_EVENT.validate_python(document)
    document["data"]["person"] = {"pid": "0" * 32}
    parsed = PUBLISHED_EVENT.validate_python(document)
    assert isinstance(parsed, PublishedScreening)
    assert parsed.data.person is not None


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("id", lambda e, n: e.update(id=f"case-{n}")),
        ("source", lambda e, n: e.update(source=f"/640106001001/{n}")),
        ("building", lambda e, n: e["data"].update(building=n.lower())),
        ("compound", lambda e, n: e["data"].update(compound=f"household {n}")),
    ],
)
def test_a_resident_id_outside_person_is_refused(where: str, change: Any) -> None:
    """Only ``person`` is pseudonymised: a number in free text would reach the bus as is."""
    number = resident_id(seq=321)
    document = screening()
    change(document, number)
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    [error] = info.value.errors(include_input=False)
    assert error["loc"][-1] == where
    assert "resident ID" in error["msg"] and number not in error["msg"]


def test_an_eighteen_digit_record_number_that_is_no_resident_id_is_accepted() -> None:
    number = resident_id(seq=321)
    wrong_check = number[:-1] + ("1" if number[-1] != "1" else "2")
    document = screening(event_id=f"rec-{wrong_check}")
    assert REPORTED_EVENT.validate_python(document).id == f"rec-{wrong_check}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "gate\n3"), ("id", "a\x00b"), ("source", "/640106001001/g\x01"), ("building", "3\t")],
)
def test_identifiers_and_labels_refuse_control_characters(field: str, value: str) -> None:
    event = screening()
    if field == "building":
        event["data"]["building"] = value
    else:
        event[field] = value
    with pytest.raises(ValidationError):
        REPORTED_EVENT.validate_python(event)


def _published(event_id: str) -> bytes:
    event = screening(event_id=event_id)
    event |= {"reporter": "tok", "receivedat": event["time"]}
    return json.dumps(event).encode()


def test_a_bus_message_is_one_event_or_a_bundle() -> None:
    one, two = _published("e-1"), _published("e-2")
    assert [e.id for e in parse_message(one)] == ["e-1"]
    assert [e.id for e in parse_message(b"  " + bundle_payload([one, two]))] == ["e-1", "e-2"]
    with pytest.raises(ValueError, match="at least one event"):
        parse_message(b"[]")
    with pytest.raises(ValidationError):
        parse_message(bundle_payload([one, b'{"id": "half an event"}']))


def test_an_old_event_on_the_bus_still_decodes_for_a_rebuild() -> None:
    long_ago = datetime.now(UTC) - MAX_EVENT_AGE - timedelta(days=30)
    event = screening(when=long_ago) | {"reporter": "tok", "receivedat": long_ago.isoformat()}
    with pytest.raises(ValidationError):
        REPORTED_EVENT.validate_python(event)  # intake refuses it today
    [decoded] = parse_message(json.dumps(event).encode())  # but it was stored back then
    assert decoded.time == long_ago


TASK = "0123456789abcdef0123456789abcdef"


def test_a_task_result_is_accepted_with_its_measures() -> None:
    document = task_result(
        TASK, measures=["home_isolation", "tested"], until="2026-12-09", note="Called twice"
    )
    reported = REPORTED_EVENT.validate_python(document)
    assert reported.type is EventType.TASK_RESULT
    assert isinstance(reported, ReportedTaskResult)
    assert reported.data.measures == [TaskMeasure.HOME_ISOLATION, TaskMeasure.TESTED]
    assert reported.data.outcome is TaskOutcome.DONE
    assert reported.data.method is TaskMethod.VISIT
    assert reported.data.isolation is IsolationKind.HOME
    assert EventType.TASK_RESULT.short == "task_result"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task": "TASK-1"}, "task"),
        ({"outcome": "maybe"}, "outcome"),
        ({"method": "letter"}, "method"),
        ({"measures": ["tested", "tested"]}, "measures"),
        ({"measures": ["quarantine"]}, "measures"),
        ({"outcome": "transferred"}, "transfer_to"),
        ({"transfer_to": "640106002001"}, "transfer_to"),
        ({"note": "x" * 501}, "note"),
        ({"note": f"lives with {resident_id()}"}, "note"),
    ],
)
def test_a_bad_task_result_is_refused(change: dict[str, Any], field: str) -> None:
    document = task_result(TASK)
    document["data"].update(change)
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    assert field in str(info.value)


def test_a_published_task_result_carries_person_kind_and_no_clear_note() -> None:
    document = task_result(TASK, outcome="transferred", transfer_to="640106002001")
    document["data"] |= {"person": {"pid": "ab" * 16}, "kind": "verify_contact"}
    document |= {"reporter": "tok", "receivedat": datetime.now(UTC).isoformat()}
    [event] = parse_message(bundle_payload([json.dumps(document).encode()]))
    assert isinstance(event, PublishedTaskResult)
    assert event.data.kind == "verify_contact"
    assert event.data.transfer_to == "640106002001"
    document["data"]["note"] = "a name"
    with pytest.raises(ValidationError):
        parse_message(json.dumps(document).encode())


def test_a_task_result_without_a_note_may_say_null() -> None:
    document = task_result(TASK, note=None)
    reported = REPORTED_EVENT.validate_python(document)
    assert isinstance(reported, ReportedTaskResult) and reported.data.note is None
