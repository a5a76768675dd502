"""What intake answers for each submitted item."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Status(StrEnum):
    """The fate of one submitted event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


class RejectionCode(StrEnum):
    """Why an event was rejected (also the ``reason`` label of the rejection metric)."""

    INVALID = "invalid"
    UNKNOWN_UNIT = "unknown_unit"
    FORBIDDEN = "forbidden"
    NOT_AN_OBJECT = "not_an_object"
    #: ``data.place`` names no registered place of the event's community
    UNKNOWN_PLACE = "unknown_place"
    #: task results (see README, "Task results"): the task was never issued,
    UNKNOWN_TASK = "unknown_task"
    #: is assigned to another community, is closed, or needs a visit to be closed
    TASK_NOT_ASSIGNED = "task_not_assigned"
    TASK_CLOSED = "task_closed"
    VISIT_REQUIRED = "visit_required"
    #: the task is not known yet (issued a moment ago): the event is answered unavailable
    TASK_NOT_YET_KNOWN = "task_not_yet_known"
    #: the event store (JetStream) did not acknowledge in time: answered unavailable
    BUS_UNAVAILABLE = "bus_unavailable"
    #: corrections (see README, "Corrections"): the named type cannot be corrected,
    NOT_CORRECTABLE = "not_correctable"
    #: the action does not fit what is sent (replace without type/data, retract with data),
    CORRECTION_FORM = "correction_form"
    #: the replacement data is not valid as the named type's data,
    CORRECTION_DATA = "correction_data"
    #: the reason is missing, too long or names a resident ID
    CORRECTION_REASON = "correction_reason"


class FieldError(BaseModel):
    """One problem with one field of an event."""

    field: str = Field(description="Dotted path of the field, e.g. data.temperature_c")
    message: str


class ItemResult(BaseModel):
    """The answer for one submitted event, in submission order."""

    index: int
    id: str | None = None
    source: str | None = None
    status: Status
    code: RejectionCode | None = None
    errors: list[FieldError] = Field(default_factory=list)


class SubmissionResult(BaseModel):
    """The answer for a whole submission (one event or a batch)."""

    accepted: int
    duplicates: int
    rejected: int
    unavailable: int
    results: list[ItemResult]

    @classmethod
    def of(cls, results: list[ItemResult]) -> SubmissionResult:
        """Summarise per-item results."""

        def count(status: Status) -> int:
            return sum(1 for r in results if r.status is status)

        return cls(
            accepted=count(Status.ACCEPTED),
            duplicates=count(Status.DUPLICATE),
            rejected=count(Status.REJECTED),
            unavailable=count(Status.UNAVAILABLE),
            results=results,
        )
