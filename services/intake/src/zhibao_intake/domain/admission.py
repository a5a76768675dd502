"""Admission of one reported event: validate, check unit and scope, de-identify.

Pure: no I/O. The caller publishes what is admitted and reports the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from pydantic_core import to_json

from zhibao_intake.domain.outcome import FieldError, ItemResult, RejectionCode, Status
from zhibao_intake.domain.places import registered_places
from zhibao_intake.domain.pseudonym import Pseudonymiser
from zhibao_intake.domain.task_results import KnownTask, TaskBook, judge, unknown_task
from zhibao_shared.events import (
    MAX_ID_LENGTH,
    MAX_SOURCE_LENGTH,
    REPORTED_EVENT,
    DailyReportEvent,
    DailyReportReplacement,
    EventType,
    ReportedCorrection,
    ReportedEvent,
    ReportedTaskResult,
    event_identity,
)
from zhibao_shared.hierarchy import Registry, district_of
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.places import Places
from zhibao_shared.resident_id import mask_identifiers, masked_within
from zhibao_shared.subjects import event_subject
from zhibao_shared.tokens import Token


@dataclass(frozen=True)
class Admitted:
    """An event ready for the bus: de-identified, attributed and serialised."""

    index: int
    id: str
    source: str
    community: str
    type: EventType
    district: str
    bus_subject: str
    payload: bytes

    @property
    def msg_id(self) -> str:
        """The JetStream de-duplication id: the event's identity (see ``event_identity``)."""
        return event_identity(self.community, self.source, self.id)


@dataclass(frozen=True)
class Reporter:
    """Who is submitting, and when the submission arrived."""

    token: Token
    received_at: datetime


#: Longest part of a field path echoed (an unknown field's name is submitted text).
_MAX_PATH_PART = 64
#: What a field path shows for a part too long to repeat.
TOO_LONG = "(a name too long to repeat)"


def _field_path(loc: tuple[int | str, ...]) -> str:
    # Drop union tags pydantic inserts (event type values, person forms). The name of
    # an unknown field is submitted text: resident IDs in it are masked.
    # A tag repeated by the field after it (a person form) is one part; a correction's
    # replacement ``data`` follows its type's tag, so data.data.<field> stays whole.
    parts: list[str] = []
    previous = None
    for part in loc:
        text = str(part)
        if "." in text or text == previous:
            previous = text
            continue
        previous = text
        masked = masked_within(text, _MAX_PATH_PART)
        parts.append(TOO_LONG if masked is None else masked)
    return ".".join(parts) or "type"


def _message(error: Any) -> str:
    """The rule a field broke, never the submitted value (pydantic's ``input``)."""
    if error["type"] == "union_tag_invalid":
        allowed = ", ".join(t.value for t in EventType)
        return f"unknown event type; expected one of {allowed}"
    if error["type"] == "union_tag_not_found":
        return "type is required"
    text = str(error["msg"])
    return mask_identifiers(text.removeprefix("Value error, "))


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic errors as field-level reasons, without echoing the input values."""
    return [
        FieldError(field=_field_path(e["loc"]), message=_message(e))
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


#: The code of a correction refused for the error pydantic names (see the contract).
_CORRECTION_CODES = {
    "correction_not_correctable": RejectionCode.NOT_CORRECTABLE,
    "correction_retract_with_data": RejectionCode.CORRECTION_FORM,
    "correction_replace_without_type": RejectionCode.CORRECTION_FORM,
    "correction_replace_without_data": RejectionCode.CORRECTION_FORM,
    "correction_action": RejectionCode.CORRECTION_FORM,
}


def _correction_code(error: Any) -> RejectionCode | None:
    """The specific code of an error in a correction's ``data``, if it has one."""
    loc = error["loc"]
    if loc[:2] != (EventType.CORRECTION.value, "data"):
        return None
    if error["type"] in _CORRECTION_CODES:
        return _CORRECTION_CODES[error["type"]]
    if len(loc) == 4 and loc[3] == "reason":
        return RejectionCode.CORRECTION_REASON
    if len(loc) > 4 and loc[3] == "data":
        return RejectionCode.CORRECTION_DATA
    return None


def _rejection_code(exc: ValidationError) -> RejectionCode:
    """``invalid``, or for a correction the first specific code its errors name."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    codes = (_correction_code(e) for e in errors)
    return next((code for code in codes if code is not None), RejectionCode.INVALID)


def echoed(item: Any, key: str, limit: int) -> str | None:
    """A refused item's ``id`` or ``source`` as the answer may repeat it: resident IDs
    masked (also in disguise); None when not a string or longer than ``limit`` (the
    longest valid one), which is not repeated."""
    value = item.get(key) if isinstance(item, dict) else None
    return masked_within(value, limit) if isinstance(value, str) else None


def _rejected(index: int, item: Any, code: RejectionCode, errors: list[FieldError]) -> ItemResult:
    return ItemResult(
        index=index,
        id=echoed(item, "id", MAX_ID_LENGTH),
        source=echoed(item, "source", MAX_SOURCE_LENGTH),
        status=Status.REJECTED,
        code=code,
        errors=errors,
    )


@dataclass(frozen=True)
class ResultChecks:
    """What judging task results needs: the tasks known, whether that knowledge was just
    brought up to date with the tasks stream, and the sealer of notes."""

    tasks: TaskBook | None
    synced: bool
    notes: NoteSealer | None


#: No task projection: every task result is answered unavailable.
NO_TASKS = ResultChecks(None, False, None)
#: No registered places: labels stay unmatched, every ``data.place`` is unknown.
NO_PLACES = Places([])


def admit(
    index: int,
    item: Any,
    *,
    reporter: Reporter,
    registry: Registry,
    pseudonymiser: Pseudonymiser,
    zone: ZoneInfo,
    results: ResultChecks = NO_TASKS,
    places: Places = NO_PLACES,
) -> Admitted | ItemResult:
    """Admit one submitted item, or say precisely why not (``zone``: the district's time
    zone, in which days begin and end)."""
    if not isinstance(item, dict):
        error = FieldError(field="(event)", message="each event must be a JSON object")
        return _rejected(index, item, RejectionCode.NOT_AN_OBJECT, [error])
    try:
        reported = REPORTED_EVENT.validate_python(item)
    except ValidationError as exc:
        return _rejected(index, item, _rejection_code(exc), field_errors(exc))
    community = reported.subject
    if not registry.is_community(community):
        error = FieldError(field="subject", message="not a known community code")
        return _rejected(index, item, RejectionCode.UNKNOWN_UNIT, [error])
    if not reporter.token.covers(community):
        error = FieldError(field="subject", message="this token may not report for this community")
        return _rejected(index, item, RejectionCode.FORBIDDEN, [error])
    premature = premature_close(reported, zone)
    if premature is not None:
        return _rejected(index, item, RejectionCode.INVALID, [premature])
    if isinstance(reported, ReportedTaskResult):
        task = _task_of(index, item, reported, registry, results)
        if isinstance(task, ItemResult):
            return task
        payload = _task_result_payload(reported, task, reporter, results.notes)
    else:
        found = registered_places(reported, places)
        if isinstance(found, FieldError):
            return _rejected(index, item, RejectionCode.UNKNOWN_PLACE, [found])
        payload = _deidentified_payload(reported, reporter, pseudonymiser, found)
    return Admitted(
        index=index,
        id=reported.id,
        source=reported.source,
        community=community,
        type=reported.type,
        district=district_of(community),
        bus_subject=event_subject(community, reported.type.short),
        payload=payload,
    )


def premature_close(reported: ReportedEvent, zone: ZoneInfo) -> FieldError | None:
    """Why a daily report (or a correction's replacement of one) may not close its day: a
    day later than the day of the report's ``time`` in the district's zone has not begun,
    and cannot be closed, least of all as a zero report; else None."""
    if isinstance(reported, DailyReportEvent):
        field, day = "data.date", reported.data.date
    elif isinstance(reported, ReportedCorrection) and isinstance(
        reported.data, DailyReportReplacement
    ):
        field, day = "data.data.date", reported.data.data.date
    else:
        return None
    if day <= reported.time.astimezone(zone).date():
        return None
    return FieldError(
        field=field, message="a day can be closed once it has begun: lies after the day of time"
    )


def _task_of(
    index: int,
    item: Any,
    reported: ReportedTaskResult,
    registry: Registry,
    results: ResultChecks,
) -> KnownTask | ItemResult:
    """The task a result is about, or the answer refusing (or deferring) the result."""
    task_id = reported.data.task
    task = results.tasks.known(task_id) if results.tasks is not None else None
    if task is None and not results.synced:
        error = FieldError(
            field="data.task",
            message=f"task {task_id} is not known here yet (issued a moment ago?); "
            "send the event again after Retry-After",
        )
        return ItemResult(
            index=index,
            id=echoed(item, "id", MAX_ID_LENGTH),
            source=echoed(item, "source", MAX_SOURCE_LENGTH),
            status=Status.UNAVAILABLE,
            code=RejectionCode.TASK_NOT_YET_KNOWN,
            errors=[error],
        )
    key = event_identity(reported.subject, reported.source, reported.id)
    if task is not None and results.tasks is not None and results.tasks.applied(key):
        # stored and applied before: the task may have closed or moved since, by this very
        # result; judging it again would refuse what was accepted
        return ItemResult(
            index=index, id=reported.id, source=reported.source, status=Status.DUPLICATE
        )
    refusal = (
        unknown_task(task_id)
        if task is None
        else judge(reported.data, reported.subject, task, registry)
    )
    if refusal is not None:
        return _rejected(index, item, refusal.code, [refusal.error])
    assert task is not None
    return task


def _task_result_payload(
    reported: ReportedTaskResult, task: KnownTask, reporter: Reporter, notes: NoteSealer | None
) -> bytes:
    """The published form: the task's person and kind added, the note sealed for the
    response service (never on the bus in the clear)."""
    document = reported.model_dump(mode="json", exclude_none=True)
    data = document["data"]
    note = data.pop("note", None)
    if note is not None and notes is not None:
        data["sealed_note"] = notes.seal(reported.data.task, note)
    data["person"] = {"pid": task.pid} if task.pid else None
    data["kind"] = task.kind
    _attribute(document, reporter, reported.subject)
    return to_json(document)


def _deidentified_payload(
    reported: Any, reporter: Reporter, pseudonymiser: Pseudonymiser, place_ids: dict[str, str]
) -> bytes:
    """The published form (see ``zhibao_shared.events.PublishedEvent``) as JSON bytes.

    Built from the validated reported event with the person replaced by a
    pseudonym and the registered places' ids added; it is not validated a second
    time (the contract tests parse what intake publishes).
    """
    document = reported.model_dump(mode="json", exclude_none=True)
    data, body = reported.data, document["data"]
    if isinstance(reported, ReportedCorrection):  # a replacement's persons as the original's
        data, body = reported.data.data, body.get("data")
    person = getattr(data, "person", None)
    if person is not None:
        body["person"] = {"pid": pseudonymiser.pseudonym(person, reported.subject).pid}
    if place_ids:
        body.update(place_ids)
    _attribute(document, reporter, reported.subject)
    return to_json(document)  # pydantic-core's encoder: the same compact UTF-8, ~3x faster


def _attribute(document: dict[str, Any], reporter: Reporter, community: str) -> None:
    """Add who reported the event, at which level over ``community`` (the token's highest
    scope covering it: corrections are judged by it), and when it was received."""
    document["reporter"] = reporter.token.id
    document["receivedat"] = reporter.received_at.isoformat()
    document["reporterlevel"] = min(
        (scope for scope in reporter.token.scopes if community.startswith(scope)), key=len
    )
