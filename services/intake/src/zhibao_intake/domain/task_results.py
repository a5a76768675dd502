"""Whether a task result may be admitted: its task as intake last knew it.

Pure: no I/O. Intake keeps a projection of the tasks stream (the response
service's announcements, :mod:`zhibao_intake.task_projection`); a result is
judged against the task's entry there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from zhibao_intake.domain.outcome import FieldError, RejectionCode
from zhibao_shared.events import ReportedTaskResultData
from zhibao_shared.hierarchy import Registry, district_of
from zhibao_shared.task_rules import transfer_leaves_district, visit_missing


@dataclass(frozen=True, slots=True)
class KnownTask:
    """A task as the tasks stream last announced it."""

    unit: str
    kind: str
    open: bool
    requires_visit: bool
    pid: str | None


class TaskBook(Protocol):
    """The tasks intake knows of."""

    def known(self, task: str) -> KnownTask | None:
        """The task's entry, or None when the tasks stream has not announced it (yet)."""
        ...

    def applied(self, result: str) -> bool:
        """True when the tasks stream announced a change made by the task result of this
        identity (``event_identity``): a resend of it is a duplicate, whatever the task's
        state now."""
        ...


@dataclass(frozen=True)
class Refusal:
    """Why a task result is refused: the code and the field-level reason."""

    code: RejectionCode
    error: FieldError


def stale_for(book: TaskBook, named: Iterable[tuple[str, str]]) -> bool:
    """True when a result naming ``(task, community)`` may be judged on an outdated entry.

    A task not known yet may have been issued a moment ago; a task known to be with
    another community may have been transferred to this one a moment ago (the result
    of the new community races the transfer's announcement). Either way, the tasks
    stream as it is now must be read before the result is judged.
    """
    for task, community in named:
        entry = book.known(task)
        if entry is None or entry.unit != community:
            return True
    return False


def unknown_task(task: str) -> Refusal:
    """The refusal of a result whose task the tasks stream never announced."""
    return Refusal(
        RejectionCode.UNKNOWN_TASK,
        FieldError(field="data.task", message=f"no task {task} was issued"),
    )


def judge(
    data: ReportedTaskResultData, community: str, task: KnownTask, registry: Registry
) -> Refusal | None:
    """None when ``community`` may report ``data`` about ``task``, else why not."""
    if task.unit != community:
        return Refusal(
            RejectionCode.TASK_NOT_ASSIGNED,
            FieldError(
                field="subject",
                message=f"task {data.task} is assigned to {task.unit}, not to {community}",
            ),
        )
    if not task.open:
        return Refusal(
            RejectionCode.TASK_CLOSED,
            FieldError(field="data.task", message=f"task {data.task} is closed already"),
        )
    if visit_missing(task.requires_visit, data.outcome, data.method):
        return Refusal(
            RejectionCode.VISIT_REQUIRED,
            FieldError(
                field="data.method",
                message=f"a {task.kind} task needs a visit: a phone call cannot close it",
            ),
        )
    return _transfer_problem(data, community, registry)


def _transfer_problem(
    data: ReportedTaskResultData, community: str, registry: Registry
) -> Refusal | None:
    target = data.transfer_to
    if target is None:
        return None
    if not registry.is_community(target):
        error = FieldError(field="data.transfer_to", message="not a known community code")
        return Refusal(RejectionCode.UNKNOWN_UNIT, error)
    if target == community:
        error = FieldError(field="data.transfer_to", message="the task is with that community")
        return Refusal(RejectionCode.INVALID, error)
    if transfer_leaves_district(community, target):
        message = (
            f"the task is with district {district_of(community)}: a community may transfer "
            "it within that district only (the city's command centre may move it further)"
        )
        return Refusal(RejectionCode.INVALID, FieldError(field="data.transfer_to", message=message))
    return None
