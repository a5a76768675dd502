"""Resident ID numbers in disguise are recognised wherever the contract looks for them.

Full-width digits, a lower-case x, dashes, spaces, dots, zero-width and other
invisible characters: in ``person.id_number`` such a number is normalised and
pseudonymised like the clean one (one person, one pseudonym); in an event's
``id``, ``source`` or labels it is refused. A generated corpus of disguises is
posted to a real intake; then the bus (every stream), the data directory with
the JetStream store, every answer and every log line are searched for any
spelling of the numbers.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.security.privacy_corpus import (
    FULL_WIDTH,
    INVISIBLE,
    SEPARATORS,
    audit_lines,
    corpus,
    file_surfaces,
    leaked,
    stream_surfaces,
    wait_until,
)
from tests.support.events import COMMUNITY_A, resident_id, screening
from tests.support.intake import RunningIntake
from zhibao_shared.events import REPORTED_EVENT, parse_message
from zhibao_shared.resident_id import contains_resident_id, mask_resident_ids, normalize_resident_id
from zhibao_shared.subjects import EVENTS_STREAM

_gaps = st.text(alphabet="".join(SEPARATORS + INVISIBLE), max_size=2)


@st.composite
def disguised_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(clean number, the same number with random gaps, full-width digits or a lower x)."""
    born = draw(st.dates(date(1900, 1, 1), date(2020, 12, 31)))
    number = resident_id(
        draw(st.sampled_from(["110105", "640106"])), born, draw(st.integers(0, 999))
    )
    spelled = "".join(digit + draw(_gaps) for digit in number).rstrip("".join(SEPARATORS))
    if draw(st.booleans()):
        spelled = spelled.translate(FULL_WIDTH)
    return number, spelled.lower() if draw(st.booleans()) else spelled


@given(disguised_numbers())
def test_a_disguised_number_normalises_to_the_clean_one(pair: tuple[str, str]) -> None:
    clean, disguised = pair
    assert normalize_resident_id(disguised) == clean


@given(disguised_numbers(), st.sampled_from(["id", "source", "building"]))
def test_the_contract_refuses_a_disguised_number_in_free_text(
    pair: tuple[str, str], field: str
) -> None:
    _clean, disguised = pair
    event = screening()
    if field == "building":
        event["data"]["building"] = disguised
    else:
        event[field] = f"rec-{disguised}"
    with pytest.raises(ValidationError) as refused:
        REPORTED_EVENT.validate_python(event)
    assert {".".join(map(str, e["loc"][1:])) for e in refused.value.errors()} & {
        field,
        f"data.{field}",
    }


@given(disguised_numbers(), st.text(max_size=8), st.text(max_size=8))
def test_masking_removes_a_disguised_number_from_text(
    pair: tuple[str, str], before: str, after: str
) -> None:
    _clean, disguised = pair
    masked = mask_resident_ids(f"{before} {disguised} {after}")
    assert not contains_resident_id(masked)
    assert "[redacted-id]" in masked


def _reports(clean: str, disguised: str, n: int) -> list[dict[str, Any]]:
    """One accepted report of the disguised number as the person, three refused ones."""
    as_label = screening(event_id=f"label-{n}", building=disguised[:64])
    as_source = screening(event_id=f"source-{n}")
    as_source["source"] = f"/{COMMUNITY_A}/{disguised}"
    return [
        screening(event_id=f"person-{n}", person={"id_number": disguised}),
        screening(event_id=f"id-{n}-{disguised}"),
        as_source,
        as_label,
    ]


def test_no_spelling_of_a_number_reaches_the_bus_the_store_the_answers_or_the_logs(
    intake: RunningIntake, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    token = intake.token(COMMUNITY_A)
    pairs = corpus(6)
    numbers = sorted({clean for clean, _ in pairs})
    person_of = {f"person-{n}": clean for n, (clean, _) in enumerate(pairs)}
    person_of |= {f"clean-{k}": clean for k, clean in enumerate(numbers)}
    answers: dict[str, bytes] = {}
    for start in range(0, len(pairs), 40):
        events = [
            event
            for n, (clean, disguised) in enumerate(pairs[start : start + 40], start)
            for event in _reports(clean, disguised, n)
        ]
        answer = intake.post(token, events)
        assert answer.status_code == 207, answer.text
        statuses = [r["status"] for r in answer.json()["results"]]
        assert statuses == ["accepted", "rejected", "rejected", "rejected"] * (len(events) // 4)
        answers[f"answer {start}"] = answer.content
    clean_reports = [
        screening(event_id=f"clean-{k}", person={"id_number": clean})
        for k, clean in enumerate(numbers)
    ]
    assert intake.post(token, clean_reports).status_code == 202

    def stored() -> list[Any]:
        surfaces = asyncio.run(stream_surfaces(intake.nats.url))
        events = [
            event
            for name, blob in surfaces.items()
            if name.startswith(f"stream {EVENTS_STREAM} ")
            for event in parse_message(blob.split(b"\n\n", 1)[1])
        ]
        return events

    wait_until("every accepted report on the bus", lambda: len(stored()) == len(person_of))
    wait_until(
        "the audit records of every submission",
        lambda: len(asyncio.run(audit_lines(intake.nats.url))) >= len(answers) + 1,
    )
    pseudonyms: dict[str, set[str]] = defaultdict(set)
    for event in stored():
        person = getattr(event.data, "person", None)
        assert person is not None
        pseudonyms[person_of[event.id]].add(person.pid)
    assert sorted(pseudonyms) == numbers
    assert all(len(pids) == 1 for pids in pseudonyms.values()), "one person, one pseudonym"

    out, err = capfd.readouterr()
    surfaces = {
        **answers,
        **asyncio.run(stream_surfaces(intake.nats.url)),
        **file_surfaces(tmp_path),
        "log stdout": out.encode(),
        "log stderr": err.encode(),
    }
    assert any(name.startswith("file ") and "jetstream" in name for name in surfaces)
    assert json.loads(answers["answer 0"])["results"][1]["errors"][0]["field"] == "id"
    assert leaked(surfaces, numbers) == []
