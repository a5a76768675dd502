"""A batch's events travel in bundles, and repeats are still answered as duplicates."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.events import COMMUNITY_A, COMMUNITY_B, case, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events, stored_messages
from zhibao_intake.domain.recently_stored import RecentlyStored

BATCH = {"content-type": "application/cloudevents-batch+json"}


def post_batch(intake: RunningIntake, token: str, events: list[dict[str, Any]]) -> list[str]:
    answer = httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(events).encode(),
        headers={"authorization": f"Bearer {token}", **BATCH},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    return [r["status"] for r in answer.json()["results"]]


def test_a_batch_is_one_bundle_message_holding_its_events_in_order(
    intake: RunningIntake,
) -> None:
    token = intake.token("640106")
    suspected = case(COMMUNITY_B, person={"ref": "r-1"}, classification="suspected")
    events = [screening(COMMUNITY_A), suspected, screening(COMMUNITY_B)]
    assert post_batch(intake, token, events) == ["accepted"] * 3
    [(subject, _payload, headers)] = stored_messages(intake.nats.url)
    assert subject == "zhibao.events.640106.bundle"
    assert headers["Nats-Msg-Id"].startswith("bundle ")
    assert [e["id"] for _s, e in stored_events(intake.nats.url)] == [e["id"] for e in events]


def test_an_event_resent_in_another_batch_is_a_duplicate_and_not_stored_again(
    intake: RunningIntake,
) -> None:
    token = intake.token(COMMUNITY_A)
    first, second, third = screening(), screening(), screening()
    assert post_batch(intake, token, [first, second]) == ["accepted", "accepted"]
    assert post_batch(intake, token, [second, third]) == ["duplicate", "accepted"]
    stored = [e["id"] for _s, e in stored_events(intake.nats.url)]
    assert stored == [first["id"], second["id"], third["id"]]
    lone = stored_messages(intake.nats.url)[-1]
    assert lone[0] == f"zhibao.events.640106.{COMMUNITY_A}.screening", "one new event goes alone"


@pytest.mark.parametrize("intake_overrides", [{"intake_bundle_events": 2}])
def test_bundles_hold_at_most_the_configured_number_of_events(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    assert post_batch(intake, token, [screening() for _ in range(5)]) == ["accepted"] * 5
    sizes = [
        len(json.loads(p)) if p.startswith(b"[") else 1
        for _s, p, _h in stored_messages(intake.nats.url)
    ]
    assert sizes == [2, 2, 1]


@pytest.mark.parametrize("intake_overrides", [{"intake_recent_identities": 0}])
def test_without_the_memory_a_resent_batch_is_still_a_duplicate_by_its_bundle_id(
    intake: RunningIntake,
) -> None:
    token = intake.token(COMMUNITY_A)
    batch = [screening(), screening()]
    assert post_batch(intake, token, batch) == ["accepted", "accepted"]
    assert post_batch(intake, token, batch) == ["duplicate", "duplicate"]
    assert len(stored_events(intake.nats.url)) == 2


def test_the_memory_forgets_the_oldest_identities_beyond_its_capacity() -> None:
    recent = RecentlyStored(capacity=3)
    recent.add(["a", "b"])
    recent.add(["c", "d", "e"])
    assert len(recent) == 3
    assert "a" not in recent and "b" not in recent
    assert all(identity in recent for identity in ("c", "d", "e"))


def test_a_memory_of_capacity_zero_remembers_nothing() -> None:
    recent = RecentlyStored(capacity=0)
    recent.add(["a"])
    assert "a" not in recent and len(recent) == 0
