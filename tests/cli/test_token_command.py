"""``zhibao token``: create prints the secret last; list never shows it; revoke works."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from zhibao_cli.main import app
from zhibao_shared.tokens import TokenStore


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZHIBAO_DATA_DIR", str(tmp_path))
    return tmp_path


def test_create_list_revoke(data_dir: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app, ["token", "create", "--scope", "640106001", "--role", "report", "--name", "gate-3"]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    token = TokenStore(data_dir / "tokens.db").authenticate(secret)
    assert token is not None and token.scopes == ("640106001",)

    listed = runner.invoke(app, ["token", "list"])
    assert "gate-3" in listed.stdout and secret not in listed.stdout

    assert runner.invoke(app, ["token", "revoke", token.id]).exit_code == 0
    assert TokenStore(data_dir / "tokens.db").authenticate(secret) is None
    assert runner.invoke(app, ["token", "revoke", token.id]).exit_code == 1


def test_create_refuses_a_bad_scope(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["token", "create", "--scope", "everything"])
    assert result.exit_code != 0


def test_a_personal_token_is_created_and_listed_with_its_person(data_dir: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            *("token", "create", "--scope", "640106001001", "--role", "operate"),
            *("--name", "cloud-seal-secretary", "--person", "王芳 (社区书记)"),
        ],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    token = TokenStore(data_dir / "tokens.db").authenticate(secret)
    assert token is not None and token.person == "王芳 (社区书记)"
    shared = runner.invoke(app, ["token", "create", "--scope", "640106", "--role", "operate"])
    assert shared.exit_code == 0, shared.output
    header, *rows = runner.invoke(app, ["token", "list"]).stdout.splitlines()
    assert header.split()[-1] == "PERSON"
    mine = next(row for row in rows if row.startswith(token.id))
    assert mine.endswith("王芳 (社区书记)")
    assert [row.split()[-1] for row in rows if not row.startswith(token.id)] == ["-"]


def test_create_refuses_a_person_that_is_not_a_name(data_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["token", "create", "--scope", "640106", "--person", "王" * 81]
    )
    assert result.exit_code == 2 and "person" in result.output


def test_create_refuses_a_name_longer_than_a_declaration_can_carry(data_dir: Path) -> None:
    runner = CliRunner()
    scope = ("token", "create", "--scope", "640106", "--role", "operate")
    refused = runner.invoke(app, [*scope, "--name", "值班" * 100 + "长"])
    assert refused.exit_code == 2 and "--name" in refused.output and "200" in refused.output
    longest = runner.invoke(app, [*scope, "--name", "值班" * 100])
    assert longest.exit_code == 0, longest.output
