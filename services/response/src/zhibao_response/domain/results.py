"""Task results reported through intake: what each asks of its task, and whether it may.

A result is applied when its task is still open with the community that reported
it and its outcome is a change that community may make; otherwise (the task was
closed meanwhile, or moved to another community, or it breaks a rule of
:func:`~zhibao_response.domain.tasks.check_change`) it is only recorded in the task's
history. Intake refuses results for unknown or closed tasks up front; this is the
second line for what changed between intake's look and the result's arrival.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zhibao_response.domain.tasks import ChangeRefused, check_change
from zhibao_shared.events import PublishedTaskResult, TaskOutcome
from zhibao_shared.task_events import TaskState

#: The state each outcome moves a task to.
OUTCOME_STATES: dict[TaskOutcome, TaskState] = {
    TaskOutcome.DONE: TaskState.DONE,
    TaskOutcome.UNREACHABLE: TaskState.UNREACHABLE,
    TaskOutcome.REFUSED: TaskState.REFUSED,
    TaskOutcome.TRANSFERRED: TaskState.TRANSFERRED,
}
#: A bus message holding a task result contains this (a cheap test before decoding it).
TASK_RESULT_MARK = b'"zhibao.task_result.v1"'


@dataclass(frozen=True)
class Reporter:
    """Who reported a result: the token's name (as known here) and id."""

    name: str
    token: str


@dataclass(frozen=True)
class TaskResult:
    """One task result to apply, its note already sealed for the store."""

    key: str
    stream_sequence: int
    task: str
    reporter_unit: str
    outcome: str
    wanted: TaskState
    to_unit: str | None
    method: str
    measures: Sequence[str]
    sealed_note: bytes | None
    actor: Reporter


def result_of(
    event: PublishedTaskResult,
    stream_sequence: int,
    actor: Reporter,
    sealed_note: bytes | None,
) -> TaskResult:
    """The result an event reports."""
    data = event.data
    return TaskResult(
        key=event.dedup_key,
        stream_sequence=stream_sequence,
        task=data.task,
        reporter_unit=event.subject,
        outcome=data.outcome.value,
        wanted=OUTCOME_STATES[data.outcome],
        to_unit=data.transfer_to,
        method=data.method.value,
        measures=tuple(m.value for m in data.measures),
        sealed_note=sealed_note,
        actor=actor,
    )


def applicable(
    state: TaskState,
    unit: str,
    kind: str,
    requires_visit: bool,
    result: TaskResult,
) -> bool:
    """True when ``result`` may move the task (in ``state``, with ``unit``, of ``kind``)
    as it says: reported by that community, a change it may make (the same check as the
    state route's, with the result's method)."""
    if unit != result.reporter_unit or result.to_unit == unit:
        return False
    try:
        check_change(
            state,
            result.wanted,
            unit=unit,
            kind=kind,
            requires_visit=requires_visit,
            method=result.method,
            to=result.to_unit,
        )
    except ChangeRefused:
        return False
    return True
