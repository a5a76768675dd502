"""The correction event's contract: what a correction may say, and how it is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.events import resident_id
from zhibao_shared.events import (
    PUBLISHED_EVENT,
    REPORTED_EVENT,
    CorrectionAction,
    EventType,
    PublishedCaseReplacement,
    PublishedCorrection,
    ReportedCorrection,
    ReportedScreeningReplacement,
    Retraction,
    event_identity,
    parse_message,
    published_payload,
)
from zhibao_shared.subjects import event_subject

COMMUNITY = "640106001001"
ORIGINAL = {"source": f"/{COMMUNITY}/gate-3", "id": "evt-17"}


def correction(**data: Any) -> dict[str, Any]:
    """A correction document of COMMUNITY naming ORIGINAL, with ``data`` as given."""
    return {
        "specversion": "1.0",
        "id": "corr-1",
        "source": f"/{COMMUNITY}/app",
        "type": "zhibao.correction.v1",
        "subject": COMMUNITY,
        "time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "data": {"corrects": ORIGINAL, "reason": "entered for the wrong resident", **data},
    }


def errors_of(document: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_a_retraction_names_the_original_by_its_identity() -> None:
    reported = REPORTED_EVENT.validate_python(correction(action="retract"))
    assert isinstance(reported, ReportedCorrection)
    assert reported.type is EventType.CORRECTION
    assert isinstance(reported.data, Retraction)
    assert reported.data.action is CorrectionAction.RETRACT
    assert reported.corrected_key == event_identity(COMMUNITY, ORIGINAL["source"], ORIGINAL["id"])
    assert reported.dedup_key == event_identity(COMMUNITY, f"/{COMMUNITY}/app", "corr-1")


def test_a_replacement_validates_its_data_as_the_named_type() -> None:
    document = correction(
        action="replace",
        type="zhibao.screening.v1",
        data={"temperature_c": 36.4, "site": "gate", "person": {"id_number": resident_id()}},
    )
    reported = REPORTED_EVENT.validate_python(document)
    assert isinstance(reported, ReportedCorrection)
    assert isinstance(reported.data, ReportedScreeningReplacement)
    assert reported.data.data.temperature_c == 36.4


def test_corrections_go_on_their_own_subject() -> None:
    assert EventType.CORRECTION.short == "correction"
    assert event_subject(COMMUNITY, EventType.CORRECTION.short) == (
        f"zhibao.events.640106.{COMMUNITY}.correction"
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"action": "replace", "data": {"temperature_c": 36.4, "site": "gate"}}, "without_type"),
        ({"action": "replace", "type": "zhibao.screening.v1"}, "without_data"),
        ({"action": "retract", "data": {"temperature_c": 36.4, "site": "gate"}}, "with_data"),
        ({"action": "replace", "type": "zhibao.task_result.v1", "data": {}}, "not_correctable"),
        ({"action": "retract", "type": "zhibao.correction.v1"}, "not_correctable"),
        ({"action": "erase"}, "correction_action"),
    ],
)
def test_a_malformed_correction_is_refused_with_a_specific_error(
    data: dict[str, Any], error: str
) -> None:
    [(loc, kind)] = errors_of(correction(**data))
    assert loc == ("zhibao.correction.v1", "data")
    assert kind.startswith("correction_") and kind.endswith(error)


def test_replacement_data_of_another_type_is_refused() -> None:
    document = correction(
        action="replace",
        type="zhibao.screening.v1",
        data={"person": {"ref": "r-1"}, "classification": "confirmed"},
    )
    fields = {loc[-1] for loc, _ in errors_of(document)}
    assert fields == {"temperature_c", "site", "classification"}


@pytest.mark.parametrize(
    ("reason", "kind"),
    [(None, "missing"), ("", "string_too_short"), ("x" * 501, "string_too_long")],
)
def test_a_correction_needs_a_short_reason(reason: str | None, kind: str) -> None:
    document = correction(action="retract")
    if reason is None:
        del document["data"]["reason"]
    else:
        document["data"]["reason"] = reason
    [(loc, error)] = errors_of(document)
    assert loc[-1] == "reason" and error == kind


def test_a_reason_naming_a_resident_id_is_refused() -> None:
    number = resident_id(seq=456)
    document = correction(action="retract", reason=f"meant {number}")
    with pytest.raises(ValidationError) as info:
        REPORTED_EVENT.validate_python(document)
    [error] = info.value.errors(include_input=False)
    assert error["loc"][-1] == "reason"
    assert "resident ID" in error["msg"] and number not in error["msg"]


def test_the_published_form_carries_pseudonymised_replacement_data() -> None:
    document = correction(
        action="replace",
        type="zhibao.case.v1",
        data={"person": {"pid": "ab" * 16}, "classification": "excluded"},
    )
    document |= {"reporter": "tok", "receivedat": datetime.now(UTC).isoformat()}
    [event] = parse_message(json.dumps(document).encode())
    assert isinstance(event, PublishedCorrection)
    assert isinstance(event.data, PublishedCaseReplacement)
    assert event.data.data.person.pid == "ab" * 16
    assert PUBLISHED_EVENT.validate_json(published_payload(event)) == event
    document["data"]["data"]["person"] = {"id_number": resident_id()}
    with pytest.raises(ValidationError):
        parse_message(json.dumps(document).encode())


def test_corrections_order_by_time_then_identity() -> None:
    early = correction(action="retract")
    twin = dict(early, id="corr-0")
    late = dict(early, id="corr-00", time=datetime.now(UTC).isoformat())
    events = [REPORTED_EVENT.validate_python(d) for d in (late, early, twin)]
    orders = {e.id: e.order for e in events if isinstance(e, ReportedCorrection)}
    assert sorted(orders, key=orders.__getitem__) == ["corr-0", "corr-1", "corr-00"]
