"""Tokens: scoped, role-bound, stored hashed, effective without a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zhibao_shared.tokens import Role, TokenStore, bearer_secret


def test_token_is_stored_hashed_and_scoped(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    token, secret = store.create(scopes=["640106001"], role=Role.REPORT, name="gate-3")
    found = store.authenticate(secret)
    assert found is not None and found.id == token.id
    assert found.covers("640106001001") and not found.covers("640106002001")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.split("_", 2)[2].encode() not in on_disk  # the random part (may hold "_")


def test_other_process_sees_new_and_revoked_tokens(tmp_path: Path) -> None:
    service_view = TokenStore(tmp_path / "tokens.db")
    cli_view = TokenStore(tmp_path / "tokens.db")
    assert service_view.authenticate("zb_x_y") is None
    token, secret = cli_view.create(scopes=["6401"], role=Role.READ)
    assert service_view.authenticate(secret) is not None
    assert cli_view.revoke(token.id)
    assert service_view.authenticate(secret) is None
    assert not cli_view.revoke(token.id)


def test_token_needs_a_numeric_scope(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scope"):
        TokenStore(tmp_path / "t.db").create(scopes=["all"], role=Role.REPORT)


def test_roles_and_header_parsing() -> None:
    assert Role.OPERATE.permits(Role.READ)
    assert not Role.READ.permits(Role.REPORT)
    assert not Role.REPORT.permits(Role.OPERATE)
    assert bearer_secret("Bearer abc") == "abc"
    assert bearer_secret("Basic abc") is None
    assert bearer_secret(None) is None


def test_a_token_file_from_before_expiry_keeps_working(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    path = tmp_path / "tokens.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE tokens (id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, "
            "name TEXT NOT NULL, role TEXT NOT NULL, scopes TEXT NOT NULL, "
            "created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        old.execute(
            "INSERT INTO tokens VALUES ('abcd1234', ?, 'gate-1', 'report', '640106', "
            "'2026-01-01T00:00:00+00:00', NULL)",
            (hashlib.sha256(b"zb_abcd1234_secret").hexdigest(),),
        )
    store = TokenStore(path)
    token = store.authenticate("zb_abcd1234_secret")
    assert token is not None and token.expires_at is None and token.person is None
    personal, secret = store.create(scopes=["640106"], role=Role.OPERATE, person="王芳 (社区书记)")
    assert store.authenticate(secret) == personal
    store.close()


def test_an_expired_token_is_refused_but_still_listed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    past = datetime.now(UTC) - timedelta(seconds=1)
    token, secret = store.create(scopes=["6401"], role=Role.READ, expires_at=past)
    assert store.authenticate(secret) is None
    assert not store.still_active(token.id)
    assert [t.id for t in store.list()] == [token.id]
    later, secret = store.create(
        scopes=["6401"], role=Role.READ, expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    assert store.authenticate(secret) == later and store.still_active(later.id)
    assert store.revoke(later.id) and not store.still_active(later.id)


def test_a_personal_token_names_its_person_everywhere_it_is_read(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    token, secret = store.create(
        scopes=["640106001001"], role=Role.OPERATE, name="cloud-seal", person=" 王芳  (社区书记) "
    )
    assert token.person == "王芳 (社区书记)"
    found = TokenStore(tmp_path / "tokens.db").authenticate(secret)
    assert found is not None and found.person == "王芳 (社区书记)"
    assert [t.person for t in store.list()] == ["王芳 (社区书记)"]
    shared, _ = store.create(scopes=["640106"], role=Role.OPERATE, person="  ")
    assert shared.person is None


@pytest.mark.parametrize("person", ["王芳\n(社区书记)\x00", "王" * 81])
def test_a_person_that_is_not_a_short_name_is_refused(tmp_path: Path, person: str) -> None:
    with pytest.raises(ValueError, match="person"):
        TokenStore(tmp_path / "t.db").create(scopes=["6401"], role=Role.OPERATE, person=person)


async def test_a_shared_postgres_store_from_before_persons_is_upgraded_in_place(
    postgres_url: str,
) -> None:
    from sqlalchemy import create_engine, text

    from zhibao_shared.tokens import store_url

    old = create_engine(store_url(postgres_url))
    with old.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE tokens (id VARCHAR PRIMARY KEY, digest VARCHAR NOT NULL UNIQUE, "
                "name VARCHAR NOT NULL, role VARCHAR NOT NULL, scopes VARCHAR NOT NULL, "
                "created_at VARCHAR NOT NULL, revoked_at VARCHAR, expires_at VARCHAR)"
            )
        )
    old.dispose()
    store = TokenStore.from_url(postgres_url)
    try:
        token, secret = store.create(scopes=["6401"], role=Role.OPERATE, person="李强 (社区主任)")
        assert store.authenticate(secret) == token and token.person == "李强 (社区主任)"
    finally:
        store.close()
