"""The pure rules: task transitions, measure progress, what a declaration plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from zhibao_response.domain.playbook import AppliesTo, Measure, plan
from zhibao_response.domain.progress import MeasureStatus, TaskFacts, progress
from zhibao_response.domain.tasks import (
    InvalidTransition,
    TransferOutside,
    VisitRequired,
    check_change,
    check_transition,
)
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.task_events import TaskState as S

NOW = datetime(2026, 12, 3, 8, tzinfo=UTC)
DUE = NOW + timedelta(hours=2)


def facts(state: S, closed_h: float | None = None) -> TaskFacts:
    closed = NOW + timedelta(hours=closed_h) if closed_h is not None else None
    return TaskFacts(state, DUE, closed)


@pytest.mark.parametrize(
    ("tasks", "at_h", "status"),
    [
        ([], 0, MeasureStatus.NONE),
        ([facts(S.DONE, 1)], 5, MeasureStatus.DONE),
        ([facts(S.DONE, 1), facts(S.DONE, 3)], 5, MeasureStatus.LATE),
        ([facts(S.DONE, 1), facts(S.ACCEPTED)], 1, MeasureStatus.PENDING),
        ([facts(S.DONE, 1), facts(S.ACCEPTED)], 3, MeasureStatus.MISSING),
        ([facts(S.DONE, 1), facts(S.REFUSED, 1)], 1, MeasureStatus.MISSING),
        ([facts(S.DONE, 3), facts(S.ISSUED)], 1, MeasureStatus.PENDING),
    ],
)
def test_a_measure_is_as_good_as_its_worst_task(
    tasks: list[TaskFacts], at_h: float, status: MeasureStatus
) -> None:
    assert progress(tasks, NOW + timedelta(hours=at_h)).status is status


def test_closed_tasks_do_not_change_and_only_a_transfer_names_a_move() -> None:
    check_transition(S.ISSUED, S.DONE)
    check_transition(S.ACCEPTED, S.TRANSFERRED)
    for closed in (S.DONE, S.UNREACHABLE, S.REFUSED, S.CANCELLED):
        with pytest.raises(InvalidTransition, match=f"{closed.value} cannot become"):
            check_transition(closed, S.ACCEPTED)
    with pytest.raises(InvalidTransition, match="allowed: done"):
        check_transition(S.ACCEPTED, S.ISSUED)
    with pytest.raises(InvalidTransition):
        check_transition(S.ISSUED, S.CANCELLED)  # only lifting a level cancels


def companion(current: S, wanted: S, method: str | None = None, to: str | None = None) -> None:
    """:func:`check_change` for a companion's verification (a kind needing a visit)."""
    check_change(
        current,
        wanted,
        unit="640106001001",
        kind="verify_companion",
        requires_visit=True,
        method=method,
        to=to,
    )


def test_one_check_holds_both_ways_a_task_changes_to_the_visit_and_district_rules() -> None:
    with pytest.raises(VisitRequired, match="verify_companion task needs a visit"):
        companion(S.ACCEPTED, S.DONE)  # the state route: no method
    with pytest.raises(VisitRequired):
        companion(S.ISSUED, S.DONE, method="phone")
    companion(S.ISSUED, S.DONE, method="visit")
    companion(S.ISSUED, S.UNREACHABLE)
    check_change(S.ISSUED, S.DONE, unit="640106001001", kind="disinfect", requires_visit=False)
    with pytest.raises(InvalidTransition):  # closed first: 409 before any other rule
        companion(S.DONE, S.DONE)

    companion(S.ISSUED, S.TRANSFERRED, to="640106002001")
    with pytest.raises(TransferOutside, match="district 640106"):
        companion(S.ISSUED, S.TRANSFERRED, to="640104001001")


def test_a_declaration_plans_one_task_per_target_due_after_the_deadline() -> None:
    registry = load_registry()
    street = registry["640106001"]
    community = registry["640106001001"]
    measures = (
        Measure(kind="notify", applies_to=AppliesTo.UNIT, deadline_hours=2),
        Measure(kind="gates", applies_to=AppliesTo.CHILDREN, deadline_hours=1),
        Measure(kind="disinfect", applies_to=AppliesTo.COMPOUNDS, deadline_hours=24),
    )
    on_street = plan(measures, street, registry, (), NOW)
    children = [c.code for c in registry.children(street.code)]
    assert [(t.kind, t.unit) for t in on_street] == [
        ("notify", street.code),
        *[("gates", code) for code in children],
    ]
    assert on_street[0].due == NOW + timedelta(hours=2)
    on_community = plan(measures, community, registry, ("A", "B"), NOW)
    assert [(t.measure, t.unit, t.compound) for t in on_community] == [
        (0, community.code, None),
        (1, community.code, "A"),
        (1, community.code, "B"),
        (2, community.code, "A"),
        (2, community.code, "B"),
    ]
