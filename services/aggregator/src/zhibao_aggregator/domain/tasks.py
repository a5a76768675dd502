"""Tasks pushed down to communities, as the rollups count them (pure: no I/O).

The response service announces each task's changes on the bus (``TaskMessage``).
Messages may arrive twice or out of order, so a task's rollup shape is always
recomputed from *all* the facts known about it, ordered by their ``at``: the
same set of facts gives the same spans whatever order they came in.

A **span** is a stretch of time during which the task was open in one
community: issued (or transferred in) until it closed or was transferred out.
A transfer ends the old community's span and opens the new one's, so a past
day still counts the task where it was that day.

Figures of a unit for a day D (district time), ``end`` the end of D:

* ``tasks_open``: tasks open at the end of D (today: open now), counted in
  the community they were assigned to then;
* ``tasks_overdue``: of those, the ones due before the end of D (today:
  before now);
* ``tasks_done`` / ``tasks_unreachable``: tasks closed on D with that outcome;
* ``median_hours_to_done``: median hours from issue to done of the tasks
  done on D (null when none).

Needs are tasks of the kinds ``need_<category>``; ``needs_open``, ``needs_overdue``
and ``needs_median_hours`` are the same figures over those tasks only.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from zhibao_shared.task_events import TaskState

OPEN = frozenset({TaskState.ISSUED, TaskState.ACCEPTED})
#: Outcomes that close a task (a transfer moves it instead).
CLOSING = frozenset({TaskState.DONE, TaskState.UNREACHABLE, TaskState.REFUSED, TaskState.CANCELLED})

TASKS_OPEN = "tasks_open"
TASKS_DONE = "tasks_done"
TASKS_OVERDUE = "tasks_overdue"
TASKS_UNREACHABLE = "tasks_unreachable"
MEDIAN_HOURS_TO_DONE = "median_hours_to_done"
COUNTS = (TASKS_OPEN, TASKS_DONE, TASKS_OVERDUE, TASKS_UNREACHABLE)
NEEDS_OPEN = "needs_open"
NEEDS_OVERDUE = "needs_overdue"
NEEDS_MEDIAN_HOURS = "needs_median_hours"
NEED_FIGURES = (NEEDS_OPEN, NEEDS_OVERDUE, NEEDS_MEDIAN_HOURS)
FIGURES = (*COUNTS, MEDIAN_HOURS_TO_DONE, *NEED_FIGURES)
#: Every need's task kind starts so (``zhibao_shared.care_events.NEED_TASK_KINDS``).
NEED_KIND_PREFIX = "need_"

#: Order of facts with the same ``at``: issue first, then what keeps it open, then moves.
_RANK = {"task_issued": 0, "task_overdue": 1}


@dataclass(frozen=True)
class TaskFact:
    """One task message as stored (no personal data: the pseudonym is not kept)."""

    task: str
    at: datetime
    event: str
    state: TaskState
    unit: str
    from_unit: str | None
    kind: str
    due: datetime

    @property
    def order(self) -> tuple[datetime, int, str]:
        """Sort key: time, then issue before changes, then closing last."""
        rank = _RANK.get(self.event, 2)
        if self.state is TaskState.TRANSFERRED:
            rank = 3
        elif self.state in CLOSING:
            rank = 4
        return (self.at, rank, self.state.value)


@dataclass(frozen=True)
class Span:
    """A stretch during which the task was open in ``unit`` (``closed_at`` None: still)."""

    task: str
    number: int
    unit: str
    kind: str
    due: datetime
    opened_at: datetime
    closed_at: datetime | None = None
    outcome: TaskState | None = None
    #: When the task was first issued (None while its ``issued`` message is unknown).
    issued_at: datetime | None = None


def spans(facts: Iterable[TaskFact]) -> list[Span]:
    """A task's spans from all its known facts, in any order (see the module docstring)."""
    ordered = sorted(facts, key=lambda f: f.order)
    if not ordered:
        return []
    last = ordered[-1]
    issued = next((f.at for f in ordered if f.event == "task_issued"), None)
    out: list[Span] = []
    current: Span | None = None
    closed = False
    for fact in ordered:
        if closed:
            break
        state = fact.state
        if state in CLOSING or state is TaskState.TRANSFERRED:
            leaving = fact.from_unit if state is TaskState.TRANSFERRED else fact.unit
            if current is None and leaving is not None:
                # opened by a message not (yet) known: the span starts at its end
                current = Span(fact.task, len(out), leaving, last.kind, last.due, fact.at)
            if current is not None:
                out.append(replace(current, closed_at=fact.at, outcome=state))
                current = None
            if state is TaskState.TRANSFERRED:
                current = Span(fact.task, len(out), fact.unit, last.kind, last.due, fact.at)
            else:
                closed = True
        elif current is None:
            current = Span(fact.task, len(out), fact.unit, last.kind, last.due, fact.at)
    if current is not None:
        out.append(current)
    return [replace(s, kind=last.kind, due=last.due, issued_at=issued) for s in out]


def hours_to_done(span: Span) -> float | None:
    """Hours from the task's issue to done, for a span that ended done."""
    if span.outcome is not TaskState.DONE or span.closed_at is None or span.issued_at is None:
        return None
    return (span.closed_at - span.issued_at).total_seconds() / 3600


def median_hours(durations: Sequence[float]) -> float | None:
    """The median, rounded to hundredths of an hour (None without any)."""
    return round(statistics.median(durations), 2) if durations else None


@dataclass(frozen=True)
class DayBounds:
    """The moments a day's task figures are taken at.

    ``start``/``end``: the day's local midnights; ``reference``: the end of the
    day, or now while the day is not over (what is overdue is judged then).
    """

    start: datetime
    end: datetime
    reference: datetime

    @classmethod
    def of(cls, start: datetime, end: datetime, now: datetime) -> DayBounds:
        """Bounds of a day running from ``start`` to ``end`` seen at ``now``."""
        return cls(start, end, min(end, now))


def is_overdue(span: Span, bounds: DayBounds) -> bool:
    """Open at the end of the day and due before its reference moment."""
    return is_open_at_end(span, bounds) and span.due < bounds.reference


def is_open_at_end(span: Span, bounds: DayBounds) -> bool:
    """Open in its unit when the day ended (today: as far as is known now)."""
    return span.opened_at < bounds.end and (span.closed_at is None or span.closed_at >= bounds.end)


def closed_on(span: Span, bounds: DayBounds, outcome: TaskState) -> bool:
    """Closed with ``outcome`` during the day."""
    return (
        span.outcome is outcome
        and span.closed_at is not None
        and bounds.start <= span.closed_at < bounds.end
    )
