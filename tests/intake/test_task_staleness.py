"""When intake must read the tasks stream before judging a task result (pure rule)."""

from __future__ import annotations

from zhibao_intake.domain.task_results import KnownTask, stale_for

A, B = "640106001001", "640106001002"


class Book:
    """The tasks as the projection last knew them."""

    def __init__(self, **tasks: KnownTask) -> None:
        self._tasks = tasks

    def known(self, task: str) -> KnownTask | None:
        return self._tasks.get(task)

    def applied(self, result: str) -> bool:
        return False


def task(unit: str, *, open_: bool = True) -> KnownTask:
    return KnownTask(unit=unit, kind="verify_contact", open=open_, requires_visit=False, pid=None)


def test_a_result_from_the_community_a_task_was_just_transferred_to_reads_the_stream() -> None:
    """Before, only unknown tasks were looked up again: the new community's result, racing
    the transfer's announcement, was refused task_not_assigned for good."""
    assert stale_for(Book(t1=task(A)), [("t1", B)])


def test_a_task_not_known_yet_reads_the_stream() -> None:
    assert stale_for(Book(), [("t1", A)])


def test_results_for_tasks_known_where_they_are_reported_are_judged_at_once() -> None:
    book = Book(t1=task(A), t2=task(B, open_=False))
    assert not stale_for(book, [("t1", A), ("t2", B)])
    assert stale_for(book, [("t1", A), ("t2", A)])
