"""Nobody can grow the audit trail without bound by being refused.

Refusals of whole requests are counted per window (per channel, address, status,
reason and token: a token past its own limits is refused as often as it likes too)
and recorded once per window with the count. The audit stream has age and size
limits from settings and still refuses deletes and purges.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import StreamConfig

from tests.security.privacy_corpus import audit_lines, wait_until
from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.nats import community_system
from zhibao_intake.domain.refusal_tally import OTHERS, RefusalKey, RefusalTally
from zhibao_shared.subjects import AUDIT_STREAM, INTAKE_SUBMIT
from zhibao_shared.tokens import Role, Token

FLOOD = 400
MAX_AGE_DAYS = 30
MAX_BYTES = 64 * 1024 * 1024


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    return {
        "audit_refusal_window_s": 1.0,
        "audit_max_age_days": MAX_AGE_DAYS,
        "audit_max_bytes": MAX_BYTES,
    }


async def _flood_nats(url: str, count: int) -> None:
    client = await community_system(url)
    try:
        for n in range(count):
            headers = {"Authorization": f"Bearer zb_forged_{n}"}
            await client.request(INTAKE_SUBMIT, b"{}", timeout=10, headers=headers)
    finally:
        await client.close()


async def _audit_config(url: str) -> StreamConfig:
    client = await nats.connect(url)
    try:
        return (await client.jetstream().stream_info(AUDIT_STREAM)).config
    finally:
        await client.close()


def test_a_flood_of_unauthenticated_requests_makes_a_few_audit_records_with_the_total(
    intake: RunningIntake,
) -> None:
    started = time.monotonic()
    with httpx.Client(base_url=intake.url, timeout=10) as client:
        for n in range(FLOOD):
            headers = {"authorization": f"Bearer zb_forged_{n}"} if n % 2 else {}
            answer = client.post("/v1/events", json=screening(), headers=headers)
            assert answer.status_code == 401
    asyncio.run(_flood_nats(intake.nats.url, FLOOD // 4))
    reader = intake.token(COMMUNITY_A, role=Role.READ)
    for _ in range(3):  # a token's refusals: counted too, under the token
        answer = httpx.post(
            f"{intake.url}/v1/events",
            json=screening(),
            headers={"authorization": f"Bearer {reader}"},
            timeout=10,
        )
        assert answer.status_code == 403
    seconds = time.monotonic() - started

    def unauthenticated() -> list[dict[str, Any]]:
        return [r for r in asyncio.run(audit_lines(intake.nats.url)) if r["status"] == 401]

    total = FLOOD + FLOOD // 4
    wait_until("every refusal counted", lambda: sum(r["count"] for r in unauthenticated()) == total)
    records = unauthenticated()
    assert {(r["channel"], r["remote"], r["reason"]) for r in records} == {
        ("http", "127.0.0.1", "unauthenticated"),
        ("nats", None, "unauthenticated"),
    }
    # At most one record per window (1 s here) and channel while the flood lasted.
    assert len(records) <= 2 * (int(seconds) + 2)
    assert len(records) < total / 10

    def forbidden() -> list[dict[str, Any]]:
        return [r for r in asyncio.run(audit_lines(intake.nats.url)) if r["status"] == 403]

    # a token's refusals are counted the same way, under the token
    wait_until("every authenticated refusal counted", lambda: sum_of(forbidden()) == 3)
    assert {(r["token"], r["reason"]) for r in forbidden()} == {(reader.split("_")[1], "role")}


def test_the_audit_stream_has_limits_and_still_refuses_deletes_and_purges(
    intake: RunningIntake,
) -> None:
    config = asyncio.run(_audit_config(intake.nats.url))
    assert config.max_age == MAX_AGE_DAYS * 24 * 3600
    assert config.max_bytes == MAX_BYTES
    assert config.deny_delete and config.deny_purge


def test_a_tally_closes_its_window_with_the_counts_and_caps_its_keys() -> None:
    tally = RefusalTally(window_s=60, max_keys=2)
    for n in range(1000):
        assert (
            tally.add(RefusalKey("http", f"10.0.0.{n % 5}", 401, "unauthenticated"), 120.0) is None
        )
    closed = tally.add(RefusalKey("nats", None, 401, "unauthenticated"), 180.0)
    assert closed is not None and closed.start == 120.0
    assert sum(closed.counts.values()) == 1000
    assert len(closed.counts) == 3
    assert closed.counts[RefusalKey("http", OTHERS, 401, "unauthenticated")] == 600
    last = tally.close(None)
    assert last is not None and last.counts == {RefusalKey("nats", None, 401, "unauthenticated"): 1}
    assert tally.close(None) is None


def test_callers_without_a_token_cannot_crowd_a_tokens_address_out_of_a_window() -> None:
    tally = RefusalTally(window_s=60, max_keys=2)
    for n in range(10):
        tally.add(RefusalKey("http", f"10.0.0.{n}", 401, "unauthenticated"), 120.0)
    leaked = Token("t1", "gate", Role.REPORT, ("640106001001",), created_at=datetime.now(UTC))
    tally.add(RefusalKey("http", "198.51.100.23", 429, "rate_limited", leaked), 121.0)
    closed = tally.close(None)
    assert closed is not None
    assert closed.counts[RefusalKey("http", "198.51.100.23", 429, "rate_limited", leaked)] == 1
    assert closed.counts[RefusalKey("http", OTHERS, 401, "unauthenticated")] == 8


def sum_of(records: list[dict[str, Any]]) -> int:
    """The refusals the tallies count."""
    return sum(r["count"] for r in records)
