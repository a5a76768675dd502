"""A task result's measures are taken when its task is done: nobody unreachable,
refusing or moved on was isolated, so no isolation is counted from such a result."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zhibao_shared.events import (
    STORED,
    IsolationKind,
    PublishedTaskResultData,
    ReportedTaskResultData,
)

TASK = "0" * 32


def result(outcome: str, measures: list[str], **more: str) -> dict[str, object]:
    return {"task": TASK, "outcome": outcome, "method": "phone", "measures": measures, **more}


@pytest.mark.parametrize("outcome", ["unreachable", "refused", "transferred"])
def test_measures_with_an_outcome_other_than_done_are_refused(outcome: str) -> None:
    extra = {"transfer_to": "640106001002"} if outcome == "transferred" else {}
    with pytest.raises(ValidationError, match=f"not when it is {outcome}"):
        ReportedTaskResultData.model_validate(result(outcome, ["home_isolation"], **extra))
    assert ReportedTaskResultData.model_validate(result(outcome, [], **extra)).measures == []


def test_a_done_result_starts_the_isolation_it_names() -> None:
    done = ReportedTaskResultData.model_validate(result("done", ["centralised_isolation"]))
    assert done.isolation is IsolationKind.CENTRALIZED


def test_one_stored_before_the_rule_is_read_and_starts_no_isolation() -> None:
    stored = PublishedTaskResultData.model_validate(
        result("unreachable", ["home_isolation"], kind="verify_contact"), context=STORED
    )
    assert stored.measures == ["home_isolation"]
    assert stored.isolation is None
