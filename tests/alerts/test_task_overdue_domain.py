"""What task messages do to a task's record, whatever order they arrive in, and how the
rules file's ``task_overdue`` section is validated."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from zhibao_alerts.config_files import ConfigError, parse
from zhibao_alerts.domain.config import Rules, Severity
from zhibao_alerts.domain.task_overdue import TaskNote, fold, note_of
from zhibao_shared.task_events import TaskEvent, TaskState, task_message

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
DUE = T0 - timedelta(hours=1)
TASK = "ab" * 16
HERE, THERE = "640106001001", "640106001002"


def overdue(at: datetime = T0, unit: str = HERE) -> TaskNote:
    return TaskNote(TASK, unit, "verify_companion", DUE, at)


def closed(at: datetime, outcome: str = "done", unit: str = HERE) -> TaskNote:
    return TaskNote(TASK, unit, "verify_companion", DUE, at, outcome)


def test_a_task_closed_before_its_due_time_is_no_concern_of_the_alerts() -> None:
    early = task_message(
        TaskEvent.CHANGED,
        task=TASK,
        unit=HERE,
        kind="disinfect",
        due=T0,
        state=TaskState.DONE,
        pid=None,
        at=T0 - timedelta(minutes=1),
    )
    assert note_of(early) is None
    late = early.model_copy(update={"at": T0 + timedelta(minutes=1)})
    assert note_of(late) == TaskNote(TASK, HERE, "disinfect", T0, late.at, "done")


def test_a_transfer_closes_the_task_in_the_unit_it_left() -> None:
    moved = task_message(
        TaskEvent.CHANGED,
        task=TASK,
        unit=THERE,
        from_unit=HERE,
        kind="verify_companion",
        due=DUE,
        state=TaskState.TRANSFERRED,
        pid=None,
        at=T0,
    )
    assert note_of(moved) == TaskNote(TASK, HERE, "verify_companion", DUE, T0, "transferred", THERE)
    accepted = moved.model_copy(update={"state": TaskState.ACCEPTED, "from_unit": None})
    assert note_of(accepted) is None


def test_an_overdue_task_is_raised_once_however_often_it_is_announced() -> None:
    first = fold({}, [overdue(), overdue()])
    assert [r.task for r in first.raised] == [TASK]
    record = first.stored[0]
    known = {record.key: replace(record, alert_id=7)}
    again = fold(known, [overdue()])
    assert again.raised == [] and again.closed == [] and again.stored == []


def test_a_close_arriving_before_the_overdue_it_follows_raises_nothing() -> None:
    """Redelivery after a failure can reorder them, within a batch or across batches:
    the task is closed, not overdue."""
    changes = fold({}, [closed(T0 + timedelta(minutes=5)), overdue(T0)])
    assert changes.raised == [] and not changes.stored[0].overdue
    [record] = fold({}, [closed(T0 + timedelta(minutes=5))]).stored
    assert not record.overdue and record.outcome == "done"
    later = fold({record.key: record}, [overdue(T0)])
    assert later.raised == [] and later.stored == []


def test_closed_at_the_very_time_it_was_announced_counts_as_closed() -> None:
    changes = fold({}, [closed(T0), overdue(T0)])
    assert changes.raised == [] and not changes.stored[0].overdue


def test_closing_an_overdue_task_takes_it_out_of_its_alert() -> None:
    raised = fold({}, [overdue()]).stored[0]
    counted = replace(raised, alert_id=3)
    changes = fold({counted.key: counted}, [closed(T0 + timedelta(hours=2), "unreachable")])
    [(record, alert_id)] = changes.closed
    assert alert_id == 3 and record.outcome == "unreachable" and not record.overdue
    repeat = fold({record.key: record}, [closed(T0 + timedelta(hours=2), "unreachable")])
    assert repeat.closed == [] and repeat.stored == []


def test_moved_away_and_back_it_is_overdue_again() -> None:
    """Transferred elsewhere, then back: a new spell in the first unit, raised anew."""
    raised = fold({}, [overdue()]).stored[0]
    counted = replace(raised, alert_id=3)
    away = closed(T0 + timedelta(hours=1), "transferred")
    back = overdue(T0 + timedelta(hours=3))
    changes = fold({counted.key: counted}, [away, back])
    assert [r.overdue_at for r in changes.raised] == [back.at]
    assert [alert for _, alert in changes.closed] == [3]
    assert changes.raised[0].alert_id is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("task_overdue: {severity: urgent}\n", "task_overdue.severity"),
        ("task_overdue: {pages: false}\n", "task_overdue.pages"),
        ("task_overdue: {kinds: {Close-Gates: {severity: critical}}}\n", "task_overdue.kinds"),
        ("task_overdue: {kinds: {deliver: {page: maybe}}}\n", "task_overdue.kinds.deliver.page"),
    ],
)
def test_a_bad_task_overdue_section_is_refused_with_where_it_is_wrong(
    text: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        parse(Rules, text, "rules.yaml")


def test_severity_and_paging_fall_back_to_the_sections_own() -> None:
    rules = parse(
        Rules,
        "task_overdue: {severity: info, kinds: {close_gates: {severity: critical}, "
        "deliver: {page: false}}}\n",
        "rules.yaml",
    ).task_overdue
    assert rules.severity_for("close_gates") is Severity.CRITICAL
    assert rules.severity_for("deliver") is Severity.INFO
    assert rules.pages_for("close_gates") and not rules.pages_for("deliver")
    assert Rules().task_overdue.pages_for("anything")
