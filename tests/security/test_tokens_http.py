"""Tokens over HTTP against real processes: query-string tokens only on the live stream,
expired tokens refused everywhere, and live streams that end when their token stops being
valid (revoked with the CLI, or expired)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.tokens_support import (
    RECHECK_S,
    TokenStack,
    bearer,
    create_token,
    token_id,
    token_stack,
    zhibao,
)
from tests.support.events import COMMUNITY_A, screening
from tests.support.sse import Events
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration
__all__ = ["token_stack"]  # the module-scoped stack, used as a fixture below

SILENCE = {
    "matchers": [{"name": "unit", "value": "640106"}],
    "duration_minutes": 10,
    "comment": "maintenance",
}
DAY = {"date": "2026-12-01"}
SERIES = {"metric": "screenings", "from": "2026-11-01", "to": "2026-11-30"}


def routes(stack: TokenStack) -> list[tuple[str, str, dict[str, str], dict[str, Any] | None]]:
    """Every authenticated route except the live stream: method, URL, query, JSON body."""
    agg, alerts = stack.aggregator, stack.alerts
    return [
        ("POST", f"{stack.intake}/v1/events", {}, screening(COMMUNITY_A)),
        ("GET", f"{agg}/v1/units/6401", {}, None),
        ("GET", f"{agg}/v1/units/6401/rollup", DAY, None),
        ("GET", f"{agg}/v1/units/6401/children", DAY, None),
        ("GET", f"{agg}/v1/units/6401/series", SERIES, None),
        ("GET", f"{agg}/v1/units/6401/completeness", DAY, None),
        ("GET", f"{agg}/v1/units/6401/report.csv", DAY, None),
        ("GET", f"{agg}/v1/units/6401/report.xlsx", DAY, None),
        ("GET", f"{agg}/v1/templates", {}, None),
        ("GET", f"{agg}/v1/units/640106/templates/district-isolation.xlsx", DAY, None),
        ("GET", f"{agg}/v1/dashboard/me", {}, None),
        ("GET", f"{agg}/v1/alerts", {}, None),
        ("GET", f"{agg}/v1/alerts/1", {}, None),
        ("POST", f"{agg}/v1/alerts/1/ack", {}, None),
        ("POST", f"{agg}/v1/alerts/1/resolve", {}, None),
        ("GET", f"{alerts}/v1/alerts", {}, None),
        ("GET", f"{alerts}/v1/alerts/1", {}, None),
        ("POST", f"{alerts}/v1/alerts/1/ack", {}, None),
        ("POST", f"{alerts}/v1/alerts/1/resolve", {}, None),
        ("POST", f"{alerts}/v1/silences", {}, SILENCE),
        ("GET", f"{alerts}/v1/silences", {}, None),
        ("DELETE", f"{alerts}/v1/silences/1", {}, None),
        ("GET", f"{alerts}/v1/notifications", {}, None),
    ]


def store(stack: TokenStack) -> TokenStore:
    """The stack's token store, opened as ``zhibao token`` opens it."""
    return TokenStore.in_data_dir(Path(stack.env["ZHIBAO_DATA_DIR"]))


def secret_for(stack: TokenStack, role: Role, expires_at: datetime | None = None) -> str:
    """A city-wide token made straight in the store (quicker than the CLI)."""
    tokens = store(stack)
    try:
        return tokens.create(scopes=["6401"], role=role, expires_at=expires_at)[1]
    finally:
        tokens.close()


def call(
    method: str, url: str, query: dict[str, str], body: dict[str, Any] | None, **kw: Any
) -> httpx.Response:
    """One request, answered within 20 s."""
    return httpx.request(method, url, params=query, json=body, timeout=20, **kw)


def live_status(stack: TokenStack, params: dict[str, str], **kw: Any) -> int:
    """The live stream's status for these parameters (the stream is closed at once)."""
    url = f"{stack.aggregator}/v1/live"
    with httpx.stream("GET", url, params=params, timeout=10, **kw) as answer:
        return answer.status_code


def events_until_the_end(events: Events) -> list[str]:
    """The names of the events still to come, until the server ends the stream."""
    names: list[str] = []
    while True:
        try:
            names.append(events.next()[0])
        except EOFError:
            return names


def test_a_query_string_token_opens_the_live_stream_and_nothing_else(
    token_stack: TokenStack,
) -> None:
    operator, reporter = secret_for(token_stack, Role.OPERATE), secret_for(token_stack, Role.REPORT)
    assert live_status(token_stack, {"access_token": operator}) == 200
    for method, url, query, body in routes(token_stack):
        secret = reporter if url.endswith("/v1/events") else operator
        in_query = call(method, url, {**query, "access_token": secret}, body)
        assert in_query.status_code == 401, (method, url, in_query.text)
        in_header = call(method, url, query, body, headers=bearer(secret))
        assert in_header.status_code != 401, (method, url, in_header.text)


def test_an_expired_token_is_refused_everywhere_and_its_stream_ends(
    token_stack: TokenStack,
) -> None:
    expires_at = datetime.now(UTC) + timedelta(seconds=6)
    operator = secret_for(token_stack, Role.OPERATE, expires_at)
    reporter = secret_for(token_stack, Role.REPORT, expires_at)
    url = f"{token_stack.aggregator}/v1/live"
    timeout = httpx.Timeout(10, read=30)
    with httpx.stream("GET", url, params={"access_token": operator}, timeout=timeout) as answer:
        assert answer.status_code == 200
        names = events_until_the_end(Events(answer.iter_lines()))
    ended = datetime.now(UTC)
    assert names[0] == "hello" and names[-1] == "unauthorised", names
    assert ended >= expires_at
    assert ended < expires_at + timedelta(seconds=10), "the stream outlived its token"
    for method, url, query, body in routes(token_stack):
        secret = reporter if url.endswith("/v1/events") else operator
        answer = call(method, url, query, body, headers=bearer(secret))
        assert answer.status_code == 401, (method, url, answer.text)
    assert live_status(token_stack, {"access_token": operator}) == 401
    listed = zhibao(token_stack.env, "token", "list").stdout
    assert "expired" in next(r for r in listed.splitlines() if r.startswith(token_id(operator)))


def test_revoking_a_token_with_the_cli_ends_its_open_live_stream(
    token_stack: TokenStack,
) -> None:
    secret = create_token(token_stack.env, "--scope", "640106", "--role", "read")
    url = f"{token_stack.aggregator}/v1/live"
    timeout = httpx.Timeout(10, read=30)
    with httpx.stream("GET", url, params={"access_token": secret}, timeout=timeout) as answer:
        assert answer.status_code == 200
        events = Events(answer.iter_lines())
        assert events.next()[0] == "hello"
        revoked = zhibao(token_stack.env, "token", "revoke", token_id(secret))
        assert revoked.returncode == 0, revoked.stderr
        revoked_at = time.monotonic()
        names = events_until_the_end(events)
        ended_after = time.monotonic() - revoked_at
    # Heartbeats come every 15 s: only the token re-check can end the stream this soon.
    assert names[-1] == "unauthorised", names
    assert ended_after < RECHECK_S + 5, f"the stream ended {ended_after:.1f} s after revocation"
    assert live_status(token_stack, {"access_token": secret}) == 401
