"""Phone numbers never leave intake in the clear.

In free text (a correction's ``reason``, the labels ``compound``/``building``/``grid``,
a task result's ``note``) a mainland phone number is masked (``[phone]``); in an
identifier (``id``, ``source``, ``dataschema``, the corrected event's ``source``/``id``)
a mobile number is refused, as a resident ID is: masking it would change the event's
identity. Events are posted to a real intake; the bus (every stream, the audit trail
included), the answers and the log lines are searched for the number's digits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.security.privacy_corpus import (
    audit_lines,
    digits_of,
    file_surfaces,
    stream_surfaces,
    wait_until,
)
from tests.support.events import COMMUNITY_A, correction, screening
from tests.support.intake import RunningIntake
from zhibao_shared.events import (
    REPORTED_EVENT,
    ReportedCorrection,
    ReportedScreening,
    parse_message,
)
from zhibao_shared.subjects import EVENTS_STREAM

PHONE = "13912345678"
REASON = f"患者王建国(电话{PHONE}, 住3号楼2单元501)体温录入错误"
MASKED_REASON = "患者王建国(电话[phone], 住3号楼2单元501)体温录入错误"
#: Ordinary device ids and sources: none of them names a phone.
ORDINARY_IDS = ["1733212345678", "1733212345", "20240623001", "640106001001", "evt-20241231"]


def _reason(event: dict[str, Any]) -> str:
    admitted = REPORTED_EVENT.validate_python(event)
    assert isinstance(admitted, ReportedCorrection)
    return admitted.data.reason


def _errors(event: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as refused:
        REPORTED_EVENT.validate_python(event)
    return {".".join(map(str, e["loc"][1:])) for e in refused.value.errors()}


@pytest.mark.parametrize("field", ["compound", "building", "grid"])
def test_a_label_has_its_phone_number_masked(field: str) -> None:
    event = screening()
    event["data"][field] = f"手机{PHONE}"
    admitted = REPORTED_EVENT.validate_python(event)
    assert isinstance(admitted, ReportedScreening)
    assert getattr(admitted.data, field) == "手机[phone]"


def test_a_reason_has_its_phone_number_masked_and_keeps_its_limit() -> None:
    reason = ("说明" * 250)[: 500 - len(PHONE)] + PHONE
    masked = _reason(correction(screening(), reason=reason))
    assert masked.endswith("[phone]")
    assert len(masked) <= 500
    assert _reason(correction(screening(), reason=REASON)) == MASKED_REASON


@pytest.mark.parametrize("field", ["id", "source", "dataschema"])
def test_an_identifier_holding_a_mobile_number_is_refused(field: str) -> None:
    event = screening()
    event[field] = f"/{COMMUNITY_A}/139-1234-5678" if field != "id" else f"case-{PHONE}"
    assert field in _errors(event)


def test_a_corrected_event_named_by_a_mobile_number_is_refused() -> None:
    errors = _errors(correction(screening(event_id=f"case-{PHONE}")))
    assert [e for e in errors if e.endswith("corrects.id")], errors


@pytest.mark.parametrize("event_id", ORDINARY_IDS)
def test_ordinary_ids_are_not_refused(event_id: str) -> None:
    event = screening(event_id=event_id)
    event["source"] = f"/{COMMUNITY_A}/{event_id}"
    REPORTED_EVENT.validate_python(event)


def test_no_phone_number_reaches_the_bus_the_audit_trail_the_answers_or_the_logs(
    intake: RunningIntake, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    token = intake.token(COMMUNITY_A)
    original = screening(event_id="orig-1")
    assert intake.post(token, [original]).status_code == 202
    by_id = screening(event_id=f"case-{PHONE}")
    by_source = screening(event_id="src-1")
    by_source["source"] = f"/{COMMUNITY_A}/+86-139-1234-5678"
    events = [
        correction(original, reason=REASON, event_id="corr-1"),
        screening(
            event_id="label-1",
            temperature=38.2,
            compound=f"手机{PHONE}",
            building="１３９－１２３４－５６７８",
            grid="网格员 139 1234 5678",
        ),
        by_id,
        by_source,
        *(screening(event_id=ordinary) for ordinary in ORDINARY_IDS),
    ]
    answer = intake.post(token, events)
    assert answer.status_code == 207, answer.text
    statuses = [r["status"] for r in answer.json()["results"]]
    assert statuses == ["accepted", "accepted", "rejected", "rejected"] + ["accepted"] * len(
        ORDINARY_IDS
    )

    def stored() -> dict[str, Any]:
        surfaces = asyncio.run(stream_surfaces(intake.nats.url))
        return {
            event.id: event
            for name, blob in surfaces.items()
            if name.startswith(f"stream {EVENTS_STREAM} ")
            for event in parse_message(blob.split(b"\n\n", 1)[1])
        }

    wait_until("every accepted event on the bus", lambda: len(stored()) == 3 + len(ORDINARY_IDS))
    wait_until(
        "the audit records of both submissions",
        lambda: len(asyncio.run(audit_lines(intake.nats.url))) >= 2,
    )
    on_bus = stored()
    assert on_bus["corr-1"].data.reason == MASKED_REASON
    label = on_bus["label-1"].data
    labels = (label.compound, label.building, label.grid)
    assert labels == ("手机[phone]", "[phone]", "网格员 [phone]")
    audited = [
        line["correction"]["reason"]
        for record in asyncio.run(audit_lines(intake.nats.url))
        for line in record.get("events", [])
        if "correction" in line
    ]
    assert audited == [MASKED_REASON]

    out, err = capfd.readouterr()
    surfaces = {
        "answer": answer.content,
        **asyncio.run(stream_surfaces(intake.nats.url)),
        **file_surfaces(tmp_path),
        "log stdout": out.encode(),
        "log stderr": err.encode(),
    }
    assert any(name.startswith("file ") and "jetstream" in name for name in surfaces)
    assert [name for name, blob in surfaces.items() if PHONE in digits_of(blob)] == []
