"""One PostgreSQL token store for every instance: a revocation reaches them all, and an
outage of the database locks no one out."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.cli.environment import stack_env
from tests.security.tokens_support import bearer, create_token, token_id, zhibao
from tests.support.events import COMMUNITY_A, screening
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration
CACHE_TTL_S = 1.0


def post(intake: str, secret: str) -> int:
    """Intake's status for one screening posted with this token."""
    answer = httpx.post(
        f"{intake}/v1/events", json=screening(COMMUNITY_A), headers=bearer(secret), timeout=20
    )
    return answer.status_code


def statuses_once_settled(intakes: list[str], secret: str, timeout_s: float) -> list[int]:
    """Each intake's status, polled until all refuse the token or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = [post(url, secret) for url in intakes]
        if all(s == 401 for s in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_two_intakes_on_one_postgres_store_both_refuse_a_revoked_token(
    tmp_path: Path, postgres_url: str
) -> None:
    shared = {
        "ZHIBAO_TOKENS_DATABASE_URL": postgres_url,
        "ZHIBAO_TOKENS_CACHE_TTL_S": str(CACHE_TTL_S),
        "ZHIBAO_LOG_LEVEL": "WARNING",
    }
    first = {**stack_env(tmp_path / "one"), **shared}
    second = {
        **first,
        "ZHIBAO_DATA_DIR": str(tmp_path / "two" / "data"),
        "ZHIBAO_INTAKE_PORT": str(free_port()),
    }
    operator = {**first, "ZHIBAO_DATA_DIR": str(tmp_path / "operator")}
    nats_url = first["ZHIBAO_NATS_URL"]
    with Stack(first, Path(first["ZHIBAO_DATA_DIR"]), nats_url, ("intake",), quiet=True) as one:
        # the second instance joins the first one's (authenticated) bus as intake
        second["ZHIBAO_NATS_URL"] = one.user_url("intake")
        two = Stack(
            second,
            Path(second["ZHIBAO_DATA_DIR"]),
            second["ZHIBAO_NATS_URL"],
            ("intake",),
            start_nats=False,
            quiet=True,
        )
        with two:
            intakes = [one.url("intake"), two.url("intake")]
            secret = create_token(operator, "--scope", "640106", "--name", "gate-9")
            assert [post(url, secret) for url in intakes] == [202, 202]
            revoked = zhibao(operator, "token", "revoke", token_id(secret))
            assert revoked.returncode == 0, revoked.stderr
            assert statuses_once_settled(intakes, secret, CACHE_TTL_S + 10) == [401, 401]
    for data in ("one/data", "two/data", "operator"):
        assert not (tmp_path / data / "tokens.db").exists(), f"{data} has a token file"


async def test_instances_keep_their_last_tokens_while_postgres_is_unreachable(
    postgres_server: str, postgres_url: str
) -> None:
    import asyncpg

    service = TokenStore.from_url(postgres_url, cache_ttl_s=0.05)
    cli = TokenStore.from_url(postgres_url)
    kept, kept_secret = cli.create(scopes=["640106"], role=Role.REPORT)
    gone, gone_secret = cli.create(scopes=["640106"], role=Role.REPORT)
    cli.revoke(gone.id)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    _expiring, expiring_secret = cli.create(scopes=["640106"], role=Role.READ, expires_at=soon)
    cli.close()
    assert service.authenticate(kept_secret) == kept
    assert service.authenticate(gone_secret) is None
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
    await asyncio.sleep(1.1)  # past the cache TTL and the expiry
    assert service.authenticate(kept_secret) == kept, "an outage locks nobody out"
    assert service.authenticate(gone_secret) is None
    assert service.authenticate(expiring_secret) is None, "expiry holds during an outage"
    service.close()
