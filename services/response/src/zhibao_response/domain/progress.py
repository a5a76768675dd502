"""How far a declared level's measures have got: done, late, missing or pending."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from zhibao_shared.task_events import TaskState


class MeasureStatus(StrEnum):
    """A measure's status, worst first."""

    #: Some task is past its deadline and not done, or was closed without being done.
    MISSING = "missing"
    #: Some task is still open and not yet due.
    PENDING = "pending"
    #: Every task is done, some after the deadline.
    LATE = "late"
    #: Every task is done in time.
    DONE = "done"
    #: The measure issued no task (no compound named, say).
    NONE = "none"


@dataclass(frozen=True)
class TaskFacts:
    """What progress needs of one task."""

    state: TaskState
    due: datetime
    closed_at: datetime | None


@dataclass
class Progress:
    """Counts of a measure's tasks and the resulting status."""

    done: int = 0
    late: int = 0
    pending: int = 0
    missing: int = 0

    @property
    def status(self) -> MeasureStatus:
        """The measure's status (the worst of its tasks)."""
        if self.missing:
            return MeasureStatus.MISSING
        if self.pending:
            return MeasureStatus.PENDING
        if self.late:
            return MeasureStatus.LATE
        return MeasureStatus.DONE if self.done else MeasureStatus.NONE


def progress(tasks: Iterable[TaskFacts], now: datetime) -> Progress:
    """A measure's progress from its tasks at ``now``."""
    out = Progress()
    for task in tasks:
        if task.state is TaskState.DONE:
            in_time = task.closed_at is not None and task.closed_at <= task.due
            out.done += in_time
            out.late += not in_time
        elif task.state in (TaskState.ISSUED, TaskState.ACCEPTED):
            overdue = now > task.due
            out.missing += overdue
            out.pending += not overdue
        else:
            out.missing += 1
    return out
