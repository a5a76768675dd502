"""A token's scope must name a unit of the registry; ``--expires`` is checked and listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.environment import stack_env
from tests.security.tokens_support import create_token, said, token_id, zhibao


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return stack_env(tmp_path)


@pytest.mark.parametrize("scope", ["6", "65", "640106999"])
def test_a_scope_naming_no_unit_is_refused_by_name(env: dict[str, str], scope: str) -> None:
    refused = zhibao(env, "token", "create", "--scope", scope, "--role", "read")
    assert refused.returncode == 2
    assert f"no unit {scope} in the registry" in said(refused)
    assert "zb_" not in refused.stdout, "no token was made"
    assert len(zhibao(env, "token", "list").stdout.strip().splitlines()) == 1  # the header


def test_unit_codes_of_every_level_are_accepted(env: dict[str, str]) -> None:
    levels = {
        "province": "64",
        "city": "6401",
        "district": "640106",
        "street": "640106001",
        "community": "640106001001",
    }
    ids = {level: token_id(create_token(env, "--scope", code)) for level, code in levels.items()}
    listed = zhibao(env, "token", "list").stdout
    for level, code in levels.items():
        row = next(line for line in listed.splitlines() if line.startswith(ids[level]))
        assert code in row and "active" in row, level


def test_one_unknown_scope_among_known_ones_refuses_the_token(env: dict[str, str]) -> None:
    refused = zhibao(env, "token", "create", "--scope", "640106", "--scope", "6")
    assert refused.returncode == 2 and "no unit 6 in the registry" in said(refused)
    assert len(zhibao(env, "token", "list").stdout.strip().splitlines()) == 1  # the header


def test_list_shows_the_expiry_of_durations_and_times(env: dict[str, str]) -> None:
    month = token_id(create_token(env, "--scope", "6401", "--expires", "30d"))
    at = token_id(create_token(env, "--scope", "6401", "--expires", "2099-01-31T18:00:00+08:00"))
    never = token_id(create_token(env, "--scope", "6401"))
    rows = {line[:8]: line for line in zhibao(env, "token", "list").stdout.splitlines()}
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert f"{in_30_days:%Y-%m-%d}" in rows[month] or (
        f"{in_30_days - timedelta(minutes=1):%Y-%m-%d}" in rows[month]
    )
    assert "2099-01-31 10:00Z" in rows[at]
    assert "never" in rows[never]
    assert "EXPIRES" in zhibao(env, "token", "list").stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("expires", "says"),
    [
        ("soon", "neither a duration"),
        ("30x", "neither a duration"),
        ("2020-01-01T00:00:00Z", "not in the future"),
        ("2099-01-01T00:00:00", "needs an offset"),
    ],
)
def test_a_bad_expiry_is_refused(env: dict[str, str], expires: str, says: str) -> None:
    refused = zhibao(env, "token", "create", "--scope", "6401", "--expires", expires)
    assert refused.returncode == 2 and says in said(refused)
