"""Polling the public summary between two releases reveals nothing new (real aggregator).

Yesterday's figures are released a few seconds into the test, so the test
sees the day before's release frozen while events keep arriving, then the
next release appear at its time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.security.public_stack import (
    ZONE,
    confirmed,
    publish_events,
    release_soon,
    running_aggregator,
)
from zhibao_aggregator.bootstrap import rebuild
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration

DISTRICT, STREET = "640106", "640106001"
A, B, C = "640106001001", "640106001002", "640106002001"
RELEASE_IN_S = 20.0


def _counts(body: dict[str, Any], figure: str) -> dict[str, int | None]:
    rows = [body, *body["children"]]
    return {row["code"]: row["figures"][figure]["value"] for row in rows}


def test_a_release_is_frozen_until_the_next_one(nats_server: NatsServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    today = now.astimezone(ZONE).date()
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    after = release_soon(now, today, RELEASE_IN_S)
    with running_aggregator(
        nats_server, tmp_path, public_release_after=after, public_min_level="community"
    ) as aggregator:
        aggregator.publish(
            [*confirmed(A, before, 2), *confirmed(B, before, 7), *confirmed(C, before, 6)]
        )
        aggregator.wait_applied(DISTRICT, before, 15)
        first = aggregator.public(DISTRICT)
        assert first.status_code == 200, first.text
        assert first.json()["date"] == str(before), "the latest release is the day before"
        assert _counts(first.json(), "new_confirmed")[DISTRICT] == 15
        street = aggregator.public(STREET).json()

        late, new = confirmed(B, before, 6), confirmed(C, yesterday, 5)
        aggregator.publish([*late, *new])
        aggregator.wait_applied(DISTRICT, before, 21)
        aggregator.wait_applied(DISTRICT, yesterday, 5)
        assert datetime.now(UTC) < now + timedelta(seconds=RELEASE_IN_S), "still before it"
        assert aggregator.public(DISTRICT).json() == first.json(), "frozen: nothing new shows"
        assert aggregator.public(STREET).json() == street
        ahead = aggregator.public(DISTRICT, date=str(yesterday))
        assert ahead.status_code == 404 and "released at" in ahead.json()["detail"]

        time.sleep(
            max(0.0, (now + timedelta(seconds=RELEASE_IN_S) - datetime.now(UTC)).total_seconds())
            + 0.5
        )
        second = aggregator.public(DISTRICT).json()
        assert second["date"] == str(yesterday), "released at its time"
        assert _counts(second, "new_confirmed")[DISTRICT] == 11, "6 late + 5 new: newly reported"
        assert _counts(second, "cumulative_confirmed")[DISTRICT] == 26
        assert _counts(second, "current_confirmed")[DISTRICT] == 26
        assert second["figures"]["days_without_new_case"] == 0
        again = aggregator.public(DISTRICT, date=str(before))
        assert again.json() == first.json(), "a past release never changes"


def test_a_release_survives_a_restart_and_a_rebuild(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Recomputing after a restart or rebuild would show late events: the stored one is served."""
    day = datetime.now(UTC).astimezone(ZONE).date() - timedelta(days=2)
    options: dict[str, Any] = {"public_min_level": "community"}
    with running_aggregator(nats_server, tmp_path, **options) as aggregator:
        aggregator.publish([*confirmed(A, day, 2), *confirmed(B, day, 7)])
        aggregator.wait_applied(DISTRICT, day, 9)
        released = aggregator.public(STREET, date=str(day)).json()
        settings = aggregator.settings
    asyncio.run(publish_events(settings, confirmed(A, day, 4)))
    assert asyncio.run(rebuild(settings, force=True)) == 13
    with running_aggregator(nats_server, tmp_path, **options) as aggregator:
        aggregator.wait_applied(DISTRICT, day, 13)
        assert aggregator.public(STREET, date=str(day)).json() == released
