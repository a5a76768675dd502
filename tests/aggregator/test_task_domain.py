"""A task's spans per community from its messages, whatever order they arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from zhibao_aggregator.domain.tasks import (
    DayBounds,
    TaskFact,
    closed_on,
    hours_to_done,
    is_open_at_end,
    is_overdue,
    median_hours,
    spans,
)
from zhibao_shared.task_events import TaskState

A, B = "640106001001", "640106001002"
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
DUE = T0 + timedelta(days=1)


def fact(
    hours: float, event: str, state: TaskState, unit: str = A, from_unit: str | None = None
) -> TaskFact:
    return TaskFact(
        "a" * 32, T0 + timedelta(hours=hours), event, state, unit, from_unit, "disinfect", DUE
    )


ISSUED = fact(0, "task_issued", TaskState.ISSUED)
ACCEPTED = fact(1, "task_changed", TaskState.ACCEPTED)
TRANSFERRED = fact(2, "task_changed", TaskState.TRANSFERRED, unit=B, from_unit=A)
OVERDUE = fact(30, "task_overdue", TaskState.ISSUED, unit=B)
DONE = fact(47, "task_changed", TaskState.DONE, unit=B)


def test_every_order_of_the_messages_gives_the_same_spans() -> None:
    facts = [ISSUED, ACCEPTED, TRANSFERRED, OVERDUE, DONE]
    expected = spans(facts)
    assert [(s.unit, s.opened_at, s.closed_at, s.outcome) for s in expected] == [
        (A, ISSUED.at, TRANSFERRED.at, TaskState.TRANSFERRED),
        (B, TRANSFERRED.at, DONE.at, TaskState.DONE),
    ]
    for order in itertools.permutations(facts):
        assert spans(order) == expected
    assert spans([*facts, DONE, ISSUED]) == expected, "a repeated message changes nothing"


def test_hours_to_done_run_from_the_first_issue_across_transfers() -> None:
    done = spans([ISSUED, TRANSFERRED, DONE])[-1]
    assert hours_to_done(done) == 47
    assert median_hours([47, 3, 4.5]) == 4.5
    assert median_hours([1, 2]) == 1.5
    assert median_hours([]) is None


def test_a_result_known_before_its_issue_counts_as_done_without_a_duration() -> None:
    (only,) = spans([DONE])
    assert (only.unit, only.outcome) == (B, TaskState.DONE)
    assert hours_to_done(only) is None


def test_a_past_day_counts_what_was_open_at_its_end() -> None:
    first, second = spans([ISSUED, TRANSFERRED, DONE])
    day_one = DayBounds.of(
        datetime(2026, 10, 31, 16, tzinfo=UTC),
        datetime(2026, 11, 1, 16, tzinfo=UTC),
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert not is_open_at_end(first, day_one), "transferred out during the day"
    assert is_open_at_end(second, day_one) and not is_overdue(second, day_one)
    later = T0 + timedelta(days=40)
    day_two = DayBounds.of(day_one.end, day_one.end + timedelta(days=1), now=later)
    assert is_overdue(second, day_two), "due during the day, still open at its end"
    day_three = DayBounds.of(day_two.end, day_two.end + timedelta(days=1), now=day_two.reference)
    assert closed_on(second, day_three, TaskState.DONE)
    assert not is_open_at_end(second, day_three)


def test_today_judges_overdue_against_now() -> None:
    (span,) = spans([ISSUED])
    start = datetime(2026, 11, 1, 16, tzinfo=UTC)
    before_due = DayBounds.of(start, start + timedelta(days=1), now=DUE - timedelta(minutes=1))
    after_due = DayBounds.of(start, start + timedelta(days=1), now=DUE + timedelta(minutes=1))
    assert is_open_at_end(span, before_due) and not is_overdue(span, before_due)
    assert is_overdue(span, after_due)
