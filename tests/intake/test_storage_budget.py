"""Each token's budget of stored bytes, with a controlled clock: a day's worth at once,
then a day's average, so a token sending new events in a loop cannot fill the stream."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest

from tests.intake.test_limits_and_audit import audit_records
from tests.support.events import COMMUNITY_A, case, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_intake.domain.storage_budget import DAY_S, StorageBudget, TokenBudgets
from zhibao_shared.subjects import AUDIT_STREAM
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
    assert budget.wait("t", daily) == 0  # the token is known from now on
    clock.now += 30 * DAY_S  # a month of silence saves no more than a day
    budget.charge("t", daily, 2 * daily)
    assert budget.wait("t", daily) > 0


def test_a_token_gets_a_budget_for_each_community_it_covers_up_to_a_30th_of_the_stream() -> None:
    clock = Clock()
    under = {
        "640106001": ["640106001001", "640106001002", "640106001003"],
        "6401": [f"c{n}" for n in range(99)],
    }
    budgets = TokenBudgets(1000, 300_000, lambda scope: under.get(scope, [scope]), clock)
    street = token("640106001", "640106001002", token_id="street")  # overlapping scopes
    community = token("640106001001", token_id="gate")
    city = token("6401", token_id="city")
    assert [budgets.daily(t) for t in (community, street, city)] == [1000, 3000, 10_000]


def test_a_request_holds_its_body_while_published_and_is_charged_what_was_stored() -> None:
    clock = Clock()
    budgets = TokenBudgets(1000, 10**9, lambda scope: [scope], clock)
    gate = token("640106001001")
    held = budgets.hold(gate, 1200)  # a request under way: the next one waits
    assert budgets.wait(gate) > 0
    budgets.settle(gate, held, 300)  # it stored a quarter of its body (the rest repeats)
    assert budgets.wait(gate) == 0
    budgets.settle(gate, budgets.hold(gate, 800), 800)
    assert budgets.wait(gate) > 0, "1,100 of 1,000 bytes stored"


def test_no_budget_when_switched_off() -> None:
    budgets = TokenBudgets(0, 10**9, lambda scope: [scope], Clock())
    gate = token("640106001001")
    budgets.settle(gate, budgets.hold(gate, 10**12), 10**12)
    assert budgets.wait(gate) == 0


# Against a running intake: what is charged, what is refused, who is not held.

PER_COMMUNITY = 30_000
PERSON = {"ref": "r-1"}


@pytest.fixture
def intake_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    # a generous per-second rate: the storage budget is what refuses
    return {
        "rate_limit_events_per_s": 10_000,
        "rate_limit_burst": 1000,
        "intake_daily_bytes_per_community": PER_COMMUNITY,
        "audit_refusal_window_s": 1.0,
        **getattr(request, "param", {}),
    }


def batch(n: int, community: str = COMMUNITY_A) -> list[dict[str, Any]]:
    return [screening(community) for _ in range(n)]


@pytest.mark.integration
def test_a_token_storing_in_a_loop_waits_and_the_communitys_other_reporters_go_on(
    intake: RunningIntake,
) -> None:
    looping = intake.token(COMMUNITY_A)
    answers = []
    for _ in range(10):
        answer = intake.post(looping, batch(40))  # about 26,000 bytes kept: events and lines
        answers.append(answer.status_code)
        if answer.status_code != 202:
            break
    assert answers == [202, 202, 429], "a day's 30,000 bytes, then no more"
    assert "storage budget" in answer.json()["detail"]
    assert int(answer.headers["retry-after"]) > 3600, "a day's average, not a second's"
    held = intake.post(looping, [case(person=PERSON, classification="suspected")])
    assert held.status_code == 429, "its own case reports share its budget"

    accepted = 40 * (len(answers) - 1)
    assert len(stored_events(intake.nats.url)) == accepted, "a refused request stored nothing"
    cdc = intake.token("640106")  # the district's CDC reports the same community
    assert intake.post(cdc, [case(person=PERSON, classification="confirmed")]).status_code == 202
    assert intake.post(intake.token(COMMUNITY_A), batch(40)).status_code == 202, "another device"
    refusals = eventually_audited(intake, "storage_budget", 2)
    assert refusals == {(looping.split("_")[1], 429): 2}, "the trail counts the token's refusals"


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["repeats", "rejected"])
def test_a_token_resending_or_sending_rejected_events_in_a_loop_cannot_fill_the_audit_trail(
    intake: RunningIntake, kind: str
) -> None:
    """Repeats and rejected events store nothing in the events stream, but each is a line
    of the trail: the token pays for those lines, so its loop stops within its budget."""
    events = batch(40)
    if kind == "rejected":
        events = [{**e, "subject": "999999999999"} for e in events]
    gate = intake.token(COMMUNITY_A)
    before = audit_bytes(intake.nats.url)
    statuses = [intake.post(gate, events).status_code for _ in range(30)]
    assert 429 in statuses, f"a loop of {len(statuses)} requests, never held back"
    held_from = statuses.index(429)
    assert held_from >= 2, "a first request and a few repeats fit in a day"
    assert set(statuses[held_from:]) == {429}
    kept = audit_bytes(intake.nats.url) - before
    assert kept < 2 * PER_COMMUNITY, f"the trail kept {kept} bytes of a {PER_COMMUNITY}-byte day"


@pytest.mark.integration
def test_repeats_cost_their_audit_lines_only(intake: RunningIntake) -> None:
    gate = intake.token(COMMUNITY_A)
    again = batch(20)
    assert intake.post(gate, again).status_code == 202  # stored: ~9,500, lines ~3,700
    assert intake.post(gate, again).status_code == 202  # a repeat: its lines only
    assert intake.post(gate, batch(20)).status_code == 202, "room left for new events"
    assert len(stored_events(intake.nats.url)) == 40


@pytest.mark.integration
@pytest.mark.parametrize(
    "intake_overrides", [{"events_max_bytes": 12_000, "intake_bundle_events": 1}], indirect=True
)
def test_events_the_stream_could_not_store_cost_nothing(intake: RunningIntake) -> None:
    filler = intake.token(COMMUNITY_A)
    assert intake.post(filler, batch(60)).status_code == 503, "the stream did not fill"
    gate = intake.token(COMMUNITY_A)  # a 30th of this stream, 400 bytes a day, is its budget
    assert [intake.post(gate, batch(40)).status_code for _ in range(12)] == [503] * 12


@pytest.mark.integration
def test_padding_a_batch_with_refused_items_does_not_thin_the_charge(
    intake: RunningIntake,
) -> None:
    """Charged by the events stored, not by the body's share: one large event among
    refused items costs what a large event costs."""
    gate = intake.token(COMMUNITY_A)
    refused: list[Any] = [0] * 150
    statuses = [
        intake.post(
            gate, [screening(compound="楼" * 60, building="栋" * 60, grid="门" * 60), *refused]
        ).status_code
        for _ in range(60)
    ]
    assert 429 in statuses, "sixty large events stored within a 30,000-byte day"
    stored = len(stored_events(intake.nats.url))
    assert stored == statuses.index(429)
    assert stored < 60


@pytest.mark.integration
def test_concurrent_requests_cannot_all_pass_before_any_is_charged(
    intake: RunningIntake,
) -> None:
    gate = intake.token(COMMUNITY_A)
    bodies = [json.dumps(batch(40)).encode() for _ in range(40)]

    async def post_all() -> list[int]:
        headers = {"authorization": f"Bearer {gate}", "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=intake.url, headers=headers, timeout=30) as client:
            answers = await asyncio.gather(*(client.post("/v1/events", content=b) for b in bodies))
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(post_all())
    # 30,000 bytes a day; each request holds its 9,000-byte body, then is charged ~26,000
    assert 1 <= statuses.count(202) <= 4, statuses
    assert set(statuses) == {202, 429}


def audit_bytes(url: str) -> int:
    """What the audit trail keeps, in bytes (once intake's buffer has been flushed)."""

    async def stream_bytes() -> int:
        client = await nats.connect(url)
        try:
            return int((await client.jetstream().stream_info(AUDIT_STREAM)).state.bytes)
        finally:
            await client.close()

    time.sleep(0.5)  # intake flushes its trail every 0.2 s
    return asyncio.run(stream_bytes())


def eventually_audited(
    intake: RunningIntake, reason: str, count: int
) -> dict[tuple[str, int], int]:
    """The trail's tallies of refusals for ``reason``, summed by (token, status), once they
    count ``count`` refusals (their windows, a second here, closed and flushed; two
    refusals may fall in two windows)."""
    deadline = time.monotonic() + 10
    summed: dict[tuple[str, int], int] = {}
    while time.monotonic() < deadline:
        records = asyncio.run(audit_records(intake.nats.url))
        summed = {}
        for r in records:
            if r.get("reason") == reason:
                key = (r["token"], r["status"])
                summed[key] = summed.get(key, 0) + r["count"]
        if sum(summed.values()) >= count:
            return summed
        time.sleep(0.2)
    raise AssertionError(f"{count} {reason} refusals not all in the audit trail: {summed}")
