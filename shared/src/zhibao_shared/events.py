"""The event contract: CloudEvents 1.0 (structured JSON) with Zhibao data.

Two forms of every event exist:

* ``Reported*`` — what a community system submits to intake. ``person`` may
  carry a raw resident ID (``{"id_number": ...}``) or a local reference
  (``{"ref": ...}``).
* ``Published*`` — what intake puts on the bus. ``person`` is always a keyed
  pseudonym (``{"pid": ...}``), and the envelope carries attribution
  extensions (``reporter``, ``receivedat``).

Consumers only ever see the published form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from zhibao_shared.hierarchy import CODE_LENGTH, Level
from zhibao_shared.places import BUILDING_ID, COMPOUND_ID, GRID_ID, PLACE_ID
from zhibao_shared.resident_id import (
    RESIDENT_ID_REFUSED,
    contains_mobile_number,
    contains_resident_id,
    free_text,
    mask_phone_numbers,
    normalize_resident_id,
)

SPEC_VERSION = "1.0"
CONTENT_TYPE_SINGLE = "application/cloudevents+json"
CONTENT_TYPE_BATCH = "application/cloudevents-batch+json"

#: How far in the future an event's ``time`` may lie (clock skew of devices).
MAX_CLOCK_SKEW = timedelta(minutes=10)
#: Events older than this are refused: nothing in a response period is older.
MAX_EVENT_AGE = timedelta(days=400)
#: Dates in event data (a daily report's day, an onset, an isolation's end) lie at most
#: this far from today, either way: the late-data horizon of ``time`` and a day of time zones.
MAX_DATE_DISTANCE = MAX_EVENT_AGE + timedelta(days=1)
#: The first day the read APIs answer for (no Zhibao data can be older).
EARLIEST_READABLE_DAY = date(2000, 1, 1)
#: A screening at or above this is a fever unless ZHIBAO_FEVER_THRESHOLD_C says otherwise.
FEVER_THRESHOLD_C = 37.3


#: Validation context for events read back from the bus. Intake's admission checks
#: (a plausible ``time``, no resident ID in free text) held when an event was accepted;
#: they must not refuse it later: a rebuild replays events older than MAX_EVENT_AGE.
STORED: dict[str, bool] = {"stored": True}


def _admitting(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get("stored"))


def _no_resident_id(value: str, info: ValidationInfo) -> str:
    """Refuse free text carrying a resident ID: only ``person`` is pseudonymised."""
    if _admitting(info) and contains_resident_id(value):
        raise ValueError(RESIDENT_ID_REFUSED)
    return value


def _no_identifier(value: str, info: ValidationInfo) -> str:
    """Refuse an identifier (an event's ``id``, ``source``, ``dataschema``) carrying a
    resident ID or a mobile number: masking it would change the event's identity."""
    _no_resident_id(value, info)
    if _admitting(info) and contains_mobile_number(value):
        raise ValueError(
            "must not contain a mobile phone number; use an identifier that does not name "
            "the person"
        )
    return value


def _free_text(value: str, info: ValidationInfo) -> str:
    """Free text that travels in the clear (labels, a correction's reason): a resident ID
    is refused (:func:`_no_resident_id`), phone numbers are masked (``[phone]``, never
    longer than the number, so the text keeps within its limit). Masked when read back
    too (idempotent): an event stored before phone numbers were masked shows none."""
    return free_text(value) if _admitting(info) else mask_phone_numbers(value)


def admissible_days(today: date) -> tuple[date, date]:
    """First and last day an event's data may name when admitted on ``today``."""
    return today - MAX_DATE_DISTANCE, today + MAX_DATE_DISTANCE


def readable_days(today: date) -> tuple[date, date]:
    """First and last day the read APIs answer for on ``today`` (data is never dated later
    than :func:`admissible_days` allows)."""
    return EARLIEST_READABLE_DAY, admissible_days(today)[1]


def _plausible_day(value: date | None, info: ValidationInfo) -> date | None:
    """Refuse a date outside :func:`admissible_days` (a 9999-12-31 report breaks day arithmetic)."""
    if value is None or not _admitting(info):
        return value
    first, last = admissible_days(datetime.now(UTC).date())
    if not first <= value <= last:
        raise ValueError(
            f"must lie within {MAX_DATE_DISTANCE.days} days of today ({first} to {last})"
        )
    return value


#: Longest CloudEvents ``id`` and ``source``.
MAX_ID_LENGTH = 128
MAX_SOURCE_LENGTH = 256
#: Identifiers and labels are printable: no control characters (they would end up in
#: message headers, log lines and de-duplication keys).
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_Label = Annotated[
    str, Field(min_length=1, max_length=64, pattern=PRINTABLE), AfterValidator(_free_text)
]


class EventType(StrEnum):
    """CloudEvents ``type`` values, versioned."""

    SCREENING = "zhibao.screening.v1"
    CASE = "zhibao.case.v1"
    ISOLATION = "zhibao.isolation.v1"
    DAILY_REPORT = "zhibao.daily_report.v1"
    TASK_RESULT = "zhibao.task_result.v1"
    CORRECTION = "zhibao.correction.v1"
    KEY_PERSON = "zhibao.keyperson.v1"
    NEED = "zhibao.need.v1"

    @cached_property
    def short(self) -> str:
        """The type's short name, used as the last token of event subjects."""
        return self.value.split(".")[1]


class Site(StrEnum):
    """Where a screening happened (the three gates and other channels)."""

    GATE = "gate"
    BUILDING = "building"
    HOUSEHOLD = "household"
    DOOR_TO_DOOR = "door_to_door"
    SELF_REPORT = "self_report"
    CHECKPOINT = "checkpoint"


class Symptom(StrEnum):
    """The fixed symptom vocabulary a screening may flag."""

    FEVER = "fever"
    COUGH = "cough"
    SORE_THROAT = "sore_throat"
    FATIGUE = "fatigue"
    SHORTNESS_OF_BREATH = "shortness_of_breath"
    LOSS_OF_TASTE_OR_SMELL = "loss_of_taste_or_smell"
    DIARRHEA = "diarrhea"
    MUSCLE_ACHE = "muscle_ache"
    HEADACHE = "headache"


class Classification(StrEnum):
    """A person's case classification; it changes over time."""

    SUSPECTED = "suspected"
    CONFIRMED = "confirmed"
    ASYMPTOMATIC = "asymptomatic"
    CLOSE_CONTACT = "close_contact"
    EXCLUDED = "excluded"
    RECOVERED = "recovered"
    DECEASED = "deceased"


class IsolationAction(StrEnum):
    """What happened in an isolation."""

    START = "start"
    CHECK = "check"
    BREACH = "breach"
    END = "end"


class IsolationKind(StrEnum):
    """Home (居家) or centralised (集中) isolation."""

    HOME = "home"
    CENTRALIZED = "centralized"


class TaskOutcome(StrEnum):
    """What became of a task a community was given (the task's next state)."""

    DONE = "done"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    TRANSFERRED = "transferred"


class TaskMethod(StrEnum):
    """How the community did the task: by phone or by a visit (上门)."""

    PHONE = "phone"
    VISIT = "visit"


class TaskMeasure(StrEnum):
    """Measures a task result reports as taken (the isolations start one)."""

    HOME_ISOLATION = "home_isolation"
    CENTRALISED_ISOLATION = "centralised_isolation"
    TESTED = "tested"
    HOSPITAL_REFERRAL = "hospital_referral"


#: The isolation a task result's measure starts (see ``TaskResultData.isolation``).
ISOLATION_MEASURES: dict[TaskMeasure, IsolationKind] = {
    TaskMeasure.HOME_ISOLATION: IsolationKind.HOME,
    TaskMeasure.CENTRALISED_ISOLATION: IsolationKind.CENTRALIZED,
}
#: A task's id as the response service answers it; a task's kind.
TASK_ID_PATTERN = r"^[0-9a-f]{32}$"
TASK_KIND_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
#: Longest note a task result may carry.
MAX_TASK_NOTE = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResidentIdPerson(_Strict):
    """A person named by an 18-character resident ID. Accepted only by intake."""

    id_number: str = Field(repr=False)

    @field_validator("id_number")
    @classmethod
    def _valid(cls, value: str) -> str:
        return normalize_resident_id(value)


class LocalRefPerson(_Strict):
    """A person named by an opaque identifier local to the reporting community."""

    ref: str = Field(min_length=1, max_length=128, repr=False)


class Pseudonym(_Strict):
    """A person as they appear on the bus: a keyed pseudonym, stable across events."""

    pid: str = Field(pattern=r"^[0-9a-f]{32}$")


def _person_form(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((key for key in ("id_number", "ref") if key in value), None)
    if isinstance(value, ResidentIdPerson):
        return "id_number"
    if isinstance(value, LocalRefPerson):
        return "ref"
    return None


ReportedPerson = Annotated[
    Annotated[ResidentIdPerson, Tag("id_number")] | Annotated[LocalRefPerson, Tag("ref")],
    Discriminator(
        _person_form,
        custom_error_type="person_form",
        custom_error_message=(
            'person must be {"id_number": "<resident ID>"} or {"ref": "<local id>"}'
        ),
    ),
]
P = TypeVar("P")


_PlaceRef = Annotated[
    str,
    Field(
        pattern=PLACE_ID,
        description="A registered building, compound or grid of the event's community "
        "(its id, e.g. 640106001001-C001-B003); the labels may still name it in words",
    ),
]


class _RegisteredPlaces(_Strict):
    """The registered places intake found for an event (from ``place`` or the labels);
    None where the event names no registered place (it then counts as unregistered)."""

    compound_id: str | None = Field(default=None, pattern=COMPOUND_ID)
    building_id: str | None = Field(default=None, pattern=BUILDING_ID)
    grid_id: str | None = Field(default=None, pattern=GRID_ID)


class ScreeningData(_Strict, Generic[P]):
    """A temperature/symptom screening at a gate, door or by self-report."""

    temperature_c: float = Field(ge=30.0, le=45.0, allow_inf_nan=False)
    site: Site
    compound: _Label | None = None
    building: _Label | None = None
    grid: _Label | None = None
    place: _PlaceRef | None = None
    symptoms: list[Symptom] = Field(default_factory=list, max_length=len(Symptom))
    travel_from_risk_area: bool = False
    person: P | None = None


class CaseData(_Strict, Generic[P]):
    """A person's (new) case classification."""

    person: P
    classification: Classification
    onset_date: Annotated[date | None, AfterValidator(_plausible_day)] = None
    compound: _Label | None = None
    building: _Label | None = None
    place: _PlaceRef | None = None


class IsolationData(_Strict, Generic[P]):
    """An isolation start, daily check, breach or end."""

    person: P
    action: IsolationAction
    kind: IsolationKind
    until: Annotated[date | None, AfterValidator(_plausible_day)] = None
    temperature_c: float | None = Field(default=None, ge=30.0, le=45.0, allow_inf_nan=False)


class DeclaredCounts(_Strict):
    """Counts a community may declare when it closes its day."""

    screenings: NonNegativeInt | None = None
    fevers: NonNegativeInt | None = None
    new_suspected: NonNegativeInt | None = None
    new_confirmed: NonNegativeInt | None = None
    in_isolation: NonNegativeInt | None = None


class DailyReportData(_Strict):
    """A community closes its day (日报); ``zero`` is the zero report (零报告)."""

    date: Annotated[date, AfterValidator(_plausible_day)]
    zero: bool
    counts: DeclaredCounts | None = None


def _unique_measures(value: list[TaskMeasure]) -> list[TaskMeasure]:
    if len(set(value)) != len(value):
        raise ValueError("each measure may be named once")
    return value


class _TaskResultFields(_Strict):
    """What a community reports about a task it was given (all forms share these)."""

    task: str = Field(pattern=TASK_ID_PATTERN, description="The task's id (POST /v1/tasks)")
    outcome: TaskOutcome
    method: TaskMethod
    measures: Annotated[
        list[TaskMeasure],
        Field(default_factory=list, max_length=len(TaskMeasure)),
        AfterValidator(_unique_measures),
    ]
    transfer_to: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="The community the task moves to (required iff outcome is transferred)",
    )
    until: Annotated[date | None, AfterValidator(_plausible_day)] = Field(
        default=None, description="Planned end of an isolation the measures start"
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> _TaskResultFields:
        transferred = self.outcome is TaskOutcome.TRANSFERRED
        if transferred and self.transfer_to is None:
            raise ValueError("a transferred task names the community it moves to (transfer_to)")
        if not transferred and self.transfer_to is not None:
            raise ValueError("only a transferred task names transfer_to")
        if self.measures and self.outcome is not TaskOutcome.DONE and _admitting(info):
            raise ValueError(
                f"measures are taken when a task is done, not when it is {self.outcome.value} "
                "(nobody reached, refused or moved on was isolated or tested): leave them out"
            )
        return self

    @property
    def isolation(self) -> IsolationKind | None:
        """The isolation the result starts (home before centralised if it names both); none
        unless the task was done (a result stored before such measures were refused)."""
        if self.outcome is not TaskOutcome.DONE:
            return None
        return next((ISOLATION_MEASURES[m] for m in self.measures if m in ISOLATION_MEASURES), None)


class ReportedTaskResultData(_TaskResultFields):
    """A task result as submitted to intake: ``note`` is free text for the response service."""

    note: (
        Annotated[
            str,
            Field(min_length=1, max_length=MAX_TASK_NOTE),
            # Sealed for the response service, never on the bus in the clear: a phone
            # number in it (a relative's, a new one) is for the task's worker to read.
            AfterValidator(_no_resident_id),
        ]
        | None
    ) = Field(default=None, repr=False)


class PublishedTaskResultData(_TaskResultFields):
    """A task result on the bus: intake adds the task's person and kind.

    The note may name people, so it never travels in the clear: ``sealed_note`` is
    the note encrypted for the response service (:mod:`zhibao_shared.note_sealing`).
    """

    person: Pseudonym | None = Field(default=None, description="The task's person, if any")
    kind: str = Field(pattern=TASK_KIND_PATTERN, description="The task's kind")
    sealed_note: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The note, AES-GCM sealed for the response service (base64url)",
    )


def event_identity(community: str, source: str, event_id: str) -> str:
    """An event's identity: who it is reported for (the community), then CloudEvents'
    ``source`` + ``id``.

    CloudEvents makes ``source`` + ``id`` unique per producer, but producers do not
    coordinate: two vendors' gate devices may both call themselves ``/gate-3``, and one
    community's system could send another's ids first. With the community in the
    identity, events reported for different communities never swallow each other (a
    token may only report for communities in its scope), while a retry of the same event
    is still the same identity, answered ``duplicate`` and counted once.
    """
    return f"{community} {source} {event_id}"


def _check_time(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value > now + MAX_CLOCK_SKEW:
        raise ValueError("lies in the future; send the time the event happened")
    if value < now - MAX_EVENT_AGE:
        raise ValueError(f"is older than {MAX_EVENT_AGE.days} days")
    return value


class _Envelope(BaseModel):
    """CloudEvents 1.0 context attributes shared by every Zhibao event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=PRINTABLE)
    source: str = Field(
        min_length=1, max_length=MAX_SOURCE_LENGTH, pattern=r"^[^\s\x00-\x1f\x7f]+$"
    )
    subject: str = Field(pattern=r"^\d{12}$", description="12-digit community code")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = Field(default=None, max_length=256, pattern=PRINTABLE)

    @field_validator("time")
    @classmethod
    def _plausible_time(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _check_time(value) if _admitting(info) else value

    @field_validator("id", "source", "dataschema")
    @classmethod
    def _free_of_resident_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value if value is None else _no_identifier(value, info)

    @property
    def dedup_key(self) -> str:
        """The event's identity: its community (``subject``), ``source`` and ``id``."""
        return event_identity(self.subject, self.source, self.id)

    @property
    def community(self) -> str:
        """The community the event is reported for."""
        return self.subject


#: The reporting token's highest scope covering the event's community (its level there),
#: stamped by intake: a correction applies to an event only from that level up (None:
#: reported before the level was stamped).
ReporterLevel = Annotated[str | None, Field(pattern=r"^\d{2,12}$")]


class _Attribution(BaseModel):
    """Extensions intake adds: who reported the event, at which level, and when it was
    received."""

    reporter: str = Field(min_length=1, max_length=64)
    receivedat: AwareDatetime
    reporterlevel: ReporterLevel = None


def may_correct(event_type: str, original_level: str | None, correcting_level: str | None) -> bool:
    """True when a correction reported at ``correcting_level`` may change an event of
    ``event_type`` (its full type name) reported at ``original_level``.

    Case reports only (concealing a case is the failure the seed studies describe): from
    the original's level up, so a community does not retract or reclassify a case its
    district's CDC reported, while a district corrects a community's. A correction with
    no level (published before levels were stamped, or held since) may change a case only
    if the case was reported by a community. Other events: any reporter of the community
    (a community corrects its gate devices' screenings, whatever their tokens' scope)."""
    if event_type != EventType.CASE.value or original_level is None:
        return True
    if correcting_level is None:
        return len(original_level) >= CODE_LENGTH[Level.COMMUNITY]
    return len(correcting_level) <= len(original_level)


def correction_rank(event_type: str, correcting_level: str | None) -> int:
    """How a correction of an event of ``event_type`` (its full type name) reported at
    ``correcting_level`` ranks among the event's corrections, before their times: the
    highest rank decides, the latest among equals.

    Case reports: by level (0 for a community or an unstamped correction, more for each
    level above), so once a district's CDC has corrected a case, a later correction from
    its community no longer decides it (the community's word does not undo the CDC's),
    whatever order they arrive in. Other events: 0, the latest decides."""
    if event_type != EventType.CASE.value or correcting_level is None:
        return 0
    return max(CODE_LENGTH[Level.COMMUNITY] - len(correcting_level), 0)


def ranked(rank: int, decider: str) -> str:
    """The stored form of a deciding correction's rank: the rank, then the identity (or
    order key) of the correction it belongs to, which versions before ranks also keep."""
    return f"{rank:02d} {decider}"


def rank_kept(stored: str | None, decider: str | None) -> int:
    """The rank :func:`ranked` stored for ``decider``; 0 (a community's) when none was
    stored (decided before ranks were kept) or it belongs to another correction (an
    earlier version, which does not keep ranks, decided since: a rolled-back or older
    instance on the same database)."""
    if stored is None or decider is None:
        return 0
    rank, _, of = stored.partition(" ")
    return int(rank) if of == decider and rank.isdigit() else 0


class ScreeningEvent(_Envelope, Generic[P]):
    """``zhibao.screening.v1``."""

    type: Literal[EventType.SCREENING]
    data: ScreeningData[P]


class CaseEvent(_Envelope, Generic[P]):
    """``zhibao.case.v1``."""

    type: Literal[EventType.CASE]
    data: CaseData[P]


class IsolationEvent(_Envelope, Generic[P]):
    """``zhibao.isolation.v1``."""

    type: Literal[EventType.ISOLATION]
    data: IsolationData[P]


class DailyReportEvent(_Envelope):
    """``zhibao.daily_report.v1``."""

    type: Literal[EventType.DAILY_REPORT]
    data: DailyReportData


class ReportedTaskResult(_Envelope):
    """``zhibao.task_result.v1`` as a community submits it."""

    type: Literal[EventType.TASK_RESULT]
    data: ReportedTaskResultData


class PublishedTaskResult(_Envelope, _Attribution):
    """A task result as it travels on the bus."""

    type: Literal[EventType.TASK_RESULT]
    data: PublishedTaskResultData


class PublishedScreeningData(_RegisteredPlaces, ScreeningData[Pseudonym]):
    """Screening data on the bus, with the registered places it names."""


class PublishedCaseData(_RegisteredPlaces, CaseData[Pseudonym]):
    """Case data on the bus, with the registered places it names."""


class PublishedIsolationData(IsolationData[Pseudonym]):
    """Isolation data on the bus."""


class PublishedScreening(ScreeningEvent[Pseudonym], _Attribution):
    """A screening as it travels on the bus."""

    data: PublishedScreeningData


class PublishedCase(CaseEvent[Pseudonym], _Attribution):
    """A case report as it travels on the bus."""

    data: PublishedCaseData


class PublishedIsolation(IsolationEvent[Pseudonym], _Attribution):
    """An isolation event as it travels on the bus."""

    data: PublishedIsolationData


class PublishedDailyReport(DailyReportEvent, _Attribution):
    """A daily report as it travels on the bus."""


class ReportedScreeningData(ScreeningData[ReportedPerson]):
    """Screening data as submitted to intake."""


class ReportedCaseData(CaseData[ReportedPerson]):
    """Case data as submitted to intake."""


class ReportedIsolationData(IsolationData[ReportedPerson]):
    """Isolation data as submitted to intake."""


class ReportedScreening(ScreeningEvent[ReportedPerson]):
    """A screening as a community system submits it."""

    data: ReportedScreeningData


class ReportedCase(CaseEvent[ReportedPerson]):
    """A case report as a community system submits it."""

    data: ReportedCaseData


class ReportedIsolation(IsolationEvent[ReportedPerson]):
    """An isolation event as a community system submits it."""

    data: ReportedIsolationData


# --- Corrections -------------------------------------------------------------------------


class CorrectionAction(StrEnum):
    """What a correction does to the event it names."""

    #: The event counts as absent (it was reported in error).
    RETRACT = "retract"
    #: The event counts with the correction's ``data`` (same identity, subject and time).
    REPLACE = "replace"


#: The event types a correction may name (task results and corrections are not correctable).
CORRECTABLE_TYPES: frozenset[EventType] = frozenset(
    {EventType.SCREENING, EventType.CASE, EventType.ISOLATION, EventType.DAILY_REPORT}
)
#: Longest reason a correction may give.
MAX_CORRECTION_REASON = 500
_CorrectableType = Literal[
    EventType.SCREENING, EventType.CASE, EventType.ISOLATION, EventType.DAILY_REPORT
]
_Reason = Annotated[
    str,
    Field(min_length=1, max_length=MAX_CORRECTION_REASON, description="Why the event is corrected"),
    AfterValidator(_free_text),
]


class CorrectedEvent(_Strict):
    """The event a correction names: its ``source`` and ``id``. Its community is the
    correction's ``subject``, so its identity is ``event_identity(subject, source, id)``."""

    source: Annotated[
        str,
        Field(min_length=1, max_length=MAX_SOURCE_LENGTH, pattern=r"^[^\s\x00-\x1f\x7f]+$"),
        AfterValidator(_no_identifier),
    ]
    id: Annotated[
        str,
        Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=PRINTABLE),
        AfterValidator(_no_identifier),
    ]


class _CorrectionFields(_Strict):
    corrects: CorrectedEvent
    reason: _Reason


class Retraction(_CorrectionFields):
    """``action: retract``: the named event counts as absent. Carries no ``data``."""

    action: Literal[CorrectionAction.RETRACT]
    type: _CorrectableType | None = Field(
        default=None, description="The corrected event's type (optional for a retraction)"
    )
    data: None = None


class _Replacement(_CorrectionFields):
    action: Literal[CorrectionAction.REPLACE]


class ReportedScreeningReplacement(_Replacement):
    """A screening's corrected data, as submitted."""

    type: Literal[EventType.SCREENING]
    data: ReportedScreeningData


class ReportedCaseReplacement(_Replacement):
    """A case report's corrected data, as submitted."""

    type: Literal[EventType.CASE]
    data: ReportedCaseData


class ReportedIsolationReplacement(_Replacement):
    """An isolation event's corrected data, as submitted."""

    type: Literal[EventType.ISOLATION]
    data: ReportedIsolationData


class DailyReportReplacement(_Replacement):
    """A daily report's corrected data (the same reported and published)."""

    type: Literal[EventType.DAILY_REPORT]
    data: DailyReportData


class PublishedScreeningReplacement(_Replacement):
    """A screening's corrected data on the bus."""

    type: Literal[EventType.SCREENING]
    data: PublishedScreeningData


class PublishedCaseReplacement(_Replacement):
    """A case report's corrected data on the bus."""

    type: Literal[EventType.CASE]
    data: PublishedCaseData


class PublishedIsolationReplacement(_Replacement):
    """An isolation event's corrected data on the bus."""

    type: Literal[EventType.ISOLATION]
    data: PublishedIsolationData


_RETRACT_TAG = "correction.retract"  # a dot: intake leaves union tags out of field paths
_CORRECTABLE_VALUES = frozenset(t.value for t in CORRECTABLE_TYPES)


def _correction_form(value: Any) -> str | None:
    """The variant of a correction's data: ``correction.retract`` or the replaced type."""
    if isinstance(value, dict):
        action, kind = value.get("action"), value.get("type")
    else:
        action, kind = getattr(value, "action", None), getattr(value, "type", None)
    if action == CorrectionAction.RETRACT:
        return _RETRACT_TAG
    if action == CorrectionAction.REPLACE and kind in _CORRECTABLE_VALUES:
        return str(kind)
    return None


def _correction_shape(value: Any) -> Any:
    """Refuse the malformed shapes with a specific error before the variant is chosen."""
    if not isinstance(value, dict):
        return value
    action, kind = value.get("action"), value.get("type")
    if kind is not None and kind not in _CORRECTABLE_VALUES:
        raise PydanticCustomError(
            "correction_not_correctable",
            "type names an event type that cannot be corrected: only screening, case, "
            "isolation and daily report events are correctable (not task results, "
            "not corrections)",
        )
    if action == CorrectionAction.RETRACT and value.get("data") is not None:
        raise PydanticCustomError(
            "correction_retract_with_data",
            "a retraction carries no data (it withdraws the event); send action replace "
            "to correct the event's data",
        )
    if action == CorrectionAction.REPLACE and kind is None:
        raise PydanticCustomError(
            "correction_replace_without_type",
            "a replacement names the corrected event's type (data.type)",
        )
    if action == CorrectionAction.REPLACE and value.get("data") is None:
        raise PydanticCustomError(
            "correction_replace_without_data",
            "a replacement carries the corrected event's data (data.data)",
        )
    return value


_CORRECTION_FORM = Discriminator(
    _correction_form,
    custom_error_type="correction_action",
    custom_error_message='action must be "retract" or "replace"',
)

ReportedCorrectionData = Annotated[
    Annotated[Retraction, Tag(_RETRACT_TAG)]
    | Annotated[ReportedScreeningReplacement, Tag(EventType.SCREENING.value)]
    | Annotated[ReportedCaseReplacement, Tag(EventType.CASE.value)]
    | Annotated[ReportedIsolationReplacement, Tag(EventType.ISOLATION.value)]
    | Annotated[DailyReportReplacement, Tag(EventType.DAILY_REPORT.value)],
    _CORRECTION_FORM,
    BeforeValidator(_correction_shape),
]
PublishedCorrectionData = Annotated[
    Annotated[Retraction, Tag(_RETRACT_TAG)]
    | Annotated[PublishedScreeningReplacement, Tag(EventType.SCREENING.value)]
    | Annotated[PublishedCaseReplacement, Tag(EventType.CASE.value)]
    | Annotated[PublishedIsolationReplacement, Tag(EventType.ISOLATION.value)]
    | Annotated[DailyReportReplacement, Tag(EventType.DAILY_REPORT.value)],
    _CORRECTION_FORM,
    BeforeValidator(_correction_shape),
]


class _CorrectionEnvelope(_Envelope):
    """``zhibao.correction.v1``: ``subject`` is the corrected event's community; ``id``
    and ``source`` are the correction's own identity; ``time`` is when it was made."""

    type: Literal[EventType.CORRECTION]
    data: _CorrectionFields

    @property
    def corrected_key(self) -> str:
        """The corrected event's identity (see :func:`event_identity`)."""
        ref = self.data.corrects
        return event_identity(self.subject, ref.source, ref.id)

    @property
    def order(self) -> tuple[datetime, str]:
        """Several corrections of one event apply in this order; the last decides."""
        return (self.time, self.dedup_key)


class ReportedCorrection(_CorrectionEnvelope):
    """A correction as a community system submits it."""

    data: ReportedCorrectionData


class PublishedCorrection(_CorrectionEnvelope, _Attribution):
    """A correction as it travels on the bus (replacement persons pseudonymised)."""

    data: PublishedCorrectionData


# The key-person and need events build on the classes above (zhibao_shared/__init__.py
# imports this module first, so the cycle always resolves in this order).
from zhibao_shared.care_events import (  # noqa: E402
    PublishedKeyPerson,
    PublishedNeed,
    ReportedKeyPerson,
    ReportedNeed,
)

ReportedEvent = Annotated[
    ReportedScreening
    | ReportedCase
    | ReportedIsolation
    | DailyReportEvent
    | ReportedTaskResult
    | ReportedCorrection
    | ReportedKeyPerson
    | ReportedNeed,
    Field(discriminator="type"),
]
PublishedEvent = Annotated[
    PublishedScreening
    | PublishedCase
    | PublishedIsolation
    | PublishedDailyReport
    | PublishedTaskResult
    | PublishedCorrection
    | PublishedKeyPerson
    | PublishedNeed,
    Field(discriminator="type"),
]

REPORTED_EVENT: TypeAdapter[ReportedEvent] = TypeAdapter(ReportedEvent)
PUBLISHED_EVENT: TypeAdapter[PublishedEvent] = TypeAdapter(PublishedEvent)


PUBLISHED_EVENTS: TypeAdapter[list[PublishedEvent]] = TypeAdapter(list[PublishedEvent])


def parse_published(raw: bytes | str) -> PublishedEvent:
    """Decode one event (a structured-mode JSON object)."""
    return PUBLISHED_EVENT.validate_json(raw, context=STORED)


def parse_message(raw: bytes) -> list[PublishedEvent]:
    """Decode a bus message: one event (a JSON object) or a bundle (a CloudEvents JSON batch).

    Intake packs a batch's events of one district into one message (see
    :func:`bundle_payload`); consumers must treat every event of a message
    on its own, de-duplicating by :attr:`dedup_key` as for single messages.
    """
    if raw.lstrip()[:1] == b"[":
        events = PUBLISHED_EVENTS.validate_json(raw, context=STORED)
        if not events:
            raise ValueError("an event bundle must hold at least one event")
        return events
    return [PUBLISHED_EVENT.validate_json(raw, context=STORED)]


#: Most events one bus message may hold (intake's ``intake_bundle_events`` is at most
#: this): a consumer sizes its first fetch by it, before it has seen a message.
MAX_BUNDLE_EVENTS = 1000


def bundle_payload(payloads: Sequence[bytes]) -> bytes:
    """Several published events' JSON as one bus message (a CloudEvents JSON batch)."""
    return b"[" + b",".join(payloads) + b"]"


def published_payload(event: PublishedEvent) -> bytes:
    """Serialise a published event as CloudEvents structured-mode JSON."""
    return event.model_dump_json(exclude_none=True).encode()


def reported_event_schema(ref_template: str) -> dict[str, Any]:
    """JSON Schema of a reported event (for OpenAPI); ``$defs`` hold the parts."""
    return REPORTED_EVENT.json_schema(ref_template=ref_template)


def as_dict(event: BaseModel) -> dict[str, Any]:
    """JSON-compatible dict of an event (for tests and tools)."""
    return event.model_dump(mode="json", exclude_none=True)
