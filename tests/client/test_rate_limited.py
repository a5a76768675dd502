"""A 429 from intake's per-token rate limit: the client waits out Retry-After and resends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_client import ZhibaoClient


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    return {"rate_limit_events_per_s": 100, "rate_limit_burst": 200}


def test_rate_limited_events_are_spooled_then_sent_after_retry_after(
    intake: RunningIntake, tmp_path: Path
) -> None:
    client = ZhibaoClient(intake.url, intake.token(COMMUNITY_A), tmp_path / "spool.db")
    events = [screening() for _ in range(400)]
    report = client.submit(events)
    assert report.accepted == 200, "the burst goes through"
    assert report.spooled == 200
    assert report.retry_after_s is not None and report.retry_after_s > 0
    drained = client.drain_until_empty(max_wait_s=30)
    assert (drained.accepted, drained.spooled) == (200, 0)
    stored = [e["id"] for _s, e in stored_events(intake.nats.url)]
    assert sorted(stored) == sorted(e["id"] for e in events)


def test_a_client_kept_at_the_rate_limit_waits_what_intake_asks_not_longer(
    intake: RunningIntake, tmp_path: Path
) -> None:
    # Every refusal here is a 429 asking for one second: waiting out a growing backoff
    # (it reached a minute after a few refusals) idles a client that may send again.
    client = ZhibaoClient(intake.url, intake.token(COMMUNITY_A), tmp_path / "spool.db")
    client.submit([screening() for _ in range(1000)])
    waits = [client.drain().retry_after_s for _ in range(8)]
    assert all(wait is not None and 0 < wait <= 1.0 for wait in waits), waits
    drained = client.drain_until_empty(max_wait_s=30)
    assert drained.spooled == 0
