"""Each token's budget of stored bytes, with a controlled clock: a day's worth at once,
then a day's average, so a token sending new events in a loop cannot fill the stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.events import COMMUNITY_A, case, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_intake.domain.storage_budget import DAY_S, StorageBudget, TokenBudgets, stored_share
from zhibao_shared.tokens import Role, Token


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def token(*scopes: str, token_id: str = "t") -> Token:
    return Token(token_id, "gate", Role.REPORT, scopes, created_at=datetime.now(UTC))


def test_a_days_bytes_at_once_then_a_days_average() -> None:
    clock = Clock()
    budget = StorageBudget(clock)
    daily = int(DAY_S) * 10  # 10 bytes a second on average
    assert budget.wait("gate-3", daily) == 0
    budget.charge("gate-3", daily, daily)  # the day's worth stored in one go
    wait = budget.wait("gate-3", daily)
    assert wait == pytest.approx(0.1)
    clock.now += wait
    assert budget.wait("gate-3", daily) == 0
    budget.charge("gate-3", daily, 500)  # a request stores more than is left: charged whole
    assert budget.wait("gate-3", daily) == pytest.approx(50.0, abs=0.2)
    assert budget.wait("another", daily) == 0, "another token has its own budget"


def test_a_budget_refills_no_further_than_a_day() -> None:
    clock = Clock()
    budget = StorageBudget(clock)
    daily = int(DAY_S)
    clock.now += 30 * DAY_S  # a month of silence saves no more than a day
    budget.charge("t", daily, daily)
    assert budget.wait("t", daily) > 0


def test_a_token_gets_a_budget_for_each_community_it_covers() -> None:
    clock = Clock()
    under = {"640106001": ["640106001001", "640106001002", "640106001003"]}
    budgets = TokenBudgets(1000, lambda scope: under.get(scope, [scope]), clock)
    street = token("640106001", "640106001002", token_id="street")  # overlapping scopes
    budgets.charge(street, 2999)
    assert budgets.wait(street) == 0, "three communities' days: 3,000 bytes"
    budgets.charge(street, 1)
    assert budgets.wait(street) > 0
    community = token("640106001001", token_id="gate")
    budgets.charge(community, 1000)
    assert budgets.wait(community) > 0, "one community's day: 1,000 bytes"


def test_no_budget_when_switched_off() -> None:
    budgets = TokenBudgets(0, lambda scope: [scope], Clock())
    gate = token("640106001001")
    budgets.charge(gate, 10**12)
    assert budgets.wait(gate) == 0


def test_a_request_is_charged_its_bodys_share_for_the_events_stored() -> None:
    assert stored_share(10_000, 100, 100) == 10_000
    assert stored_share(10_000, 100, 25) == 2_500
    assert stored_share(10_000, 100, 0) == 0, "repeats, refusals and unavailable cost nothing"


# Against a running intake: what is charged, what is refused, who is not held.

PER_COMMUNITY = 20_000
PERSON = {"ref": "r-1"}


@pytest.fixture
def intake_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    # a generous per-second rate: the storage budget is what refuses
    return {
        "rate_limit_events_per_s": 10_000,
        "rate_limit_burst": 1000,
        "intake_daily_bytes_per_community": PER_COMMUNITY,
        **getattr(request, "param", {}),
    }


def batch(n: int, community: str = COMMUNITY_A) -> list[dict[str, Any]]:
    return [screening(community) for _ in range(n)]


@pytest.mark.integration
def test_a_token_storing_in_a_loop_waits_and_the_communitys_other_reporters_go_on(
    intake: RunningIntake,
) -> None:
    looping = intake.token(COMMUNITY_A)
    stored, answers = 0, []
    for _ in range(10):
        answer = intake.post(looping, batch(40))
        answers.append(answer.status_code)
        if answer.status_code != 202:
            break
        stored += len(answer.request.content)
    assert answers[-1] == 429, answers
    assert stored >= PER_COMMUNITY, "refused before its day's bytes were stored"
    assert "storage budget" in answer.json()["detail"]
    assert int(answer.headers["retry-after"]) > 3600, "a day's average, not a second's"
    held = intake.post(looping, [case(person=PERSON, classification="suspected")])
    assert held.status_code == 429, "its own case reports share its budget"

    accepted = 40 * (len(answers) - 1)
    assert len(stored_events(intake.nats.url)) == accepted, "a refused request stored nothing"
    cdc = intake.token("640106")  # the district's CDC reports the same community
    assert intake.post(cdc, [case(person=PERSON, classification="confirmed")]).status_code == 202
    assert intake.post(intake.token(COMMUNITY_A), batch(40)).status_code == 202, "another device"


@pytest.mark.integration
def test_repeats_and_refused_events_cost_nothing(intake: RunningIntake) -> None:
    gate = intake.token(COMMUNITY_A)
    again = batch(40)
    invalid = [{**e, "subject": "999999999999"} for e in batch(40)]
    for _ in range(10):
        assert intake.post(gate, again).status_code == 202  # stored once, then repeats
        assert intake.post(gate, invalid).status_code == 422
    assert intake.post(gate, batch(20)).status_code == 202, "only the first batch was charged"


@pytest.mark.integration
@pytest.mark.parametrize(
    "intake_overrides", [{"events_max_bytes": 12_000, "intake_bundle_events": 1}], indirect=True
)
def test_events_the_stream_could_not_store_cost_nothing(intake: RunningIntake) -> None:
    gate = intake.token(COMMUNITY_A)
    statuses = [intake.post(gate, batch(40)).status_code for _ in range(12)]
    assert 503 in statuses, "the stream never filled"
    assert set(statuses) <= {202, 207, 503}, statuses
