"""Overdue tasks: which task messages matter, how a task's record follows them, and the
``task_overdue`` alert they raise (pure).

One alert per unit, local due day and task kind (``task_overdue:<unit>:<day>:<kind>``):
a community whose 300 companion verifications of the day are late gets one page and one
escalation, not 300; the alert lists its tasks, and resolves itself once every one of
them is closed or transferred.

A task's record is kept per (task, unit): a transferred task leaves its old unit (closed
there, ``transferred``) and may become overdue again in its new one, a separate record.
Messages may be redelivered or come out of order after a failure: a record applies a
message only when it is newer than what it already knows, and a task closed at the same
time it was announced overdue counts as closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo

from zhibao_alerts.domain.config import TaskOverdueRule
from zhibao_alerts.domain.triggers import Trigger
from zhibao_shared.task_events import TaskMessage, TaskState

RULE = "task_overdue"
#: States a ``task_changed`` message closes a task in (a transfer closes it in its old unit).
CLOSING = frozenset(
    {
        TaskState.DONE,
        TaskState.UNREACHABLE,
        TaskState.REFUSED,
        TaskState.CANCELLED,
        TaskState.TRANSFERRED,
    }
)
#: How many task ids a summary or a timeline entry names before "…".
IDS_SHOWN = 3


@dataclass(frozen=True)
class TaskNote:
    """What one task message says about a task in one unit."""

    task: str
    #: the unit concerned (for a transfer: the unit the task left)
    unit: str
    kind: str
    due: datetime
    at: datetime
    #: None: the task became overdue; else how it was closed there
    outcome: str | None = None
    to_unit: str | None = None
    #: a need's task marked urgent (``urgency: urgent``)
    urgent: bool = False
    #: the task's person (pseudonym): where they live routes an urgent need's alert
    person: str | None = None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def note_of(message: TaskMessage) -> TaskNote | None:
    """The note a message makes, or None when it cannot concern an overdue task: an
    issue, an acceptance, or a task closed before it was due (it never was overdue)."""
    at = _aware(message.at)
    if message.event == "task_overdue":
        person = message.person.pid if message.person is not None else None
        urgent = message.urgency == "urgent"
        return TaskNote(
            message.task, message.unit, message.kind, message.due, at, urgent=urgent, person=person
        )
    if message.event != "task_changed" or message.state not in CLOSING:
        return None
    unit, to_unit = message.unit, None
    if message.state is TaskState.TRANSFERRED:
        if message.from_unit is None:
            return None
        unit, to_unit = message.from_unit, message.unit
    if message.due >= at:
        return None
    return TaskNote(message.task, unit, message.kind, message.due, at, message.state.value, to_unit)


@dataclass(frozen=True)
class TaskRecord:
    """What the alerts service knows of a task in one unit."""

    task: str
    unit: str
    kind: str
    due: datetime
    overdue_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    to_unit: str | None = None
    alert_id: int | None = None
    #: from the overdue message (not stored: only raising the alert needs them)
    urgent: bool = False
    person: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(task, unit)."""
        return self.task, self.unit

    @property
    def overdue(self) -> bool:
        """Announced overdue and not closed since."""
        return self.overdue_at is not None and (
            self.closed_at is None or self.closed_at < self.overdue_at
        )

    def after(self, note: TaskNote) -> TaskRecord:
        """The record once ``note`` is applied (itself when the note is a repeat or older
        than what the record knows)."""
        if note.outcome is None:
            closed_since = self.closed_at is not None and self.closed_at >= note.at
            if self.overdue or closed_since:
                return self
            return replace(
                self, overdue_at=note.at, alert_id=None, urgent=note.urgent, person=note.person
            )
        if self.closed_at is not None and self.closed_at >= note.at:
            return self
        if self.overdue_at is not None and note.at < self.overdue_at:
            return self  # the close of an earlier spell, arriving late
        return replace(self, closed_at=note.at, outcome=note.outcome, to_unit=note.to_unit)


def record_of(note: TaskNote) -> TaskRecord:
    """A record that knows nothing yet."""
    return TaskRecord(note.task, note.unit, note.kind, note.due)


@dataclass(frozen=True)
class Changes:
    """What a batch of notes changes: records to store, tasks newly overdue, and tasks
    that stopped counting in an alert (closed, transferred)."""

    stored: list[TaskRecord]
    raised: list[TaskRecord]
    #: (the record now, the alert it counted in)
    closed: list[tuple[TaskRecord, int]]


def fold(known: dict[tuple[str, str], TaskRecord], notes: Sequence[TaskNote]) -> Changes:
    """Apply the notes (in time order; a close before an overdue at the same time) to the
    records known, and say what changed."""
    after = dict(known)
    for note in sorted(notes, key=lambda n: (n.at, n.outcome is not None)):
        key = (note.task, note.unit)
        after[key] = (after.get(key) or record_of(note)).after(note)
    stored: list[TaskRecord] = []
    raised: list[TaskRecord] = []
    closed: list[tuple[TaskRecord, int]] = []
    for key, now in after.items():
        before = known.get(key)
        if now == before:
            continue
        stored.append(now)
        was = before if before is not None and before.overdue else None
        # still overdue since the same announcement: nothing new for the alerts
        continuing = was is not None and now.overdue and was.overdue_at == now.overdue_at
        if now.overdue and not continuing:
            raised.append(now)
        if was is not None and was.alert_id is not None and not continuing:
            closed.append((now, was.alert_id))
    return Changes(stored, raised, closed)


def alert_day(record: TaskRecord, zone: tzinfo) -> date:
    """The local day a task was due: its alert's window with its kind."""
    return record.due.astimezone(zone).date()


#: The mark of an urgent need's alert in its window.
URGENT = "urgent"


def window(day: date, kind: str, urgent: bool = False, grid: str | None = None) -> str:
    """The alert's window: the due day and the kind; an urgent need's also ``urgent``
    and the grid of its persons (one alert per grid, routed to its worker)."""
    if not urgent:
        return f"{day.isoformat()}:{kind}"
    return f"{day.isoformat()}:{kind}:{URGENT}" + (f":{grid}" if grid else "")


def dedup_key(unit: str, day: date, kind: str) -> str:
    """The alert's dedup key (as its :class:`Trigger` has it)."""
    return f"{RULE}:{unit}:{window(day, kind)}"


def window_kind(alert_window: str) -> str:
    """The kind in an alert's window."""
    return alert_window.split(":")[1]


def window_urgent(alert_window: str) -> bool:
    """Whether an alert's window is an urgent need's."""
    return alert_window.split(":")[2:3] == [URGENT]


def _ids(tasks: Sequence[str]) -> str:
    shown = ", ".join(tasks[:IDS_SHOWN])
    return shown + (f" … (+{len(tasks) - IDS_SHOWN})" if len(tasks) > IDS_SHOWN else "")


def summaries(
    unit: str,
    kind: str,
    day: date,
    open_tasks: Sequence[tuple[str, datetime]],
    zone: tzinfo,
    urgent: bool = False,
) -> tuple[str, str]:
    """What the alert says (Chinese, English): the task, its kind and due time when it is
    one, else how many, the day and the first ids. Ids, kinds and times only; an urgent
    need's says so first."""
    zh, en = ("【紧急需求未满足】", "Urgent need not met: ") if urgent else ("", "")
    if len(open_tasks) == 1:
        task, due = open_tasks[0]
        when = due.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        return (
            f"{zh}{unit} 有任务逾期未完成：{task}（{kind}，截止 {when}）",
            f"{en}Task {task} ({kind}, due {when}) is overdue in {unit}",
        )
    ordered = [task for task, _ in sorted(open_tasks, key=lambda t: (t[1], t[0]))]
    count = len(ordered)
    return (
        f"{zh}{unit} 有 {count} 项 {kind} 任务逾期未完成（{day} 截止）：{_ids(ordered)}",
        f"{en}{count} {kind} tasks due {day} are overdue in {unit}: {_ids(ordered)}",
    )


def trigger(
    unit: str,
    kind: str,
    day: date,
    open_tasks: Sequence[tuple[str, datetime]],
    rule: TaskOverdueRule,
    zone: tzinfo,
    urgent: bool = False,
    grid: str | None = None,
) -> Trigger:
    """The ``task_overdue`` condition of a unit, due day and kind (an urgent need's: of
    its grid too, routed to the grid's worker first)."""
    summary_zh, summary_en = summaries(unit, kind, day, open_tasks, zone, urgent)
    return Trigger(
        rule=RULE,
        unit=unit,
        window=window(day, kind, urgent, grid),
        severity=rule.severity_for(kind, urgent),
        summary_zh=summary_zh,
        summary_en=summary_en,
        day=day,
        pages=rule.pages_for(kind, urgent),
        grid=grid if urgent else None,
    )


def listed(tasks: Sequence[str]) -> str:
    """Task ids for a timeline entry (the first few, then how many more)."""
    return _ids(sorted(tasks))


def closing_detail(closed: Sequence[TaskRecord]) -> str:
    """How tasks left an alert, for its timeline: ``done: id, id; transferred to X: id``."""
    groups: dict[str, list[str]] = {}
    for record in closed:
        how = record.outcome or "closed"
        if record.to_unit:
            how = f"{how} to {record.to_unit}"
        groups.setdefault(how, []).append(record.task)
    return "; ".join(f"{how}: {listed(tasks)}" for how, tasks in sorted(groups.items()))


def resolution_detail(outcomes: dict[str, int]) -> str:
    """Why the alert resolved itself: every task closed, and how."""
    counts = ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
    return f"every task of the alert is closed or transferred ({counts})"
