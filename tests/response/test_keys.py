"""The keys: placeholders refused, a generated key owner-only, details bound to key and task."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from zhibao_response.bootstrap import details_key
from zhibao_response.sealing import Sealer
from zhibao_response.settings import ResponseSettings

DETAILS = {"contact": {"phone": "13912345678"}, "note": "核查"}


def test_a_placeholder_key_is_refused() -> None:
    for value, rule in (("changeme", "placeholder"), ("short", "shorter than 32")):
        with pytest.raises(ValidationError, match=rule):
            ResponseSettings(response_key=SecretStr(value))
    with pytest.raises(ValidationError, match="placeholder"):
        ResponseSettings(pseudonym_key=SecretStr("secret"))


def test_the_generated_key_is_owner_only_and_kept(tmp_path: Path) -> None:
    settings = ResponseSettings(data_dir=tmp_path / "data")
    first = details_key(settings)
    path = tmp_path / "data" / "response.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert details_key(settings) == first


def test_sealed_details_open_only_with_their_key_and_task() -> None:
    sealer = Sealer("k" * 40)
    sealed = sealer.seal("a" * 32, DETAILS)
    assert b"13912345678" not in sealed
    assert sealer.open("a" * 32, sealed) == DETAILS
    assert sealer.open("b" * 32, sealed) is None  # copied onto another task
    assert Sealer("j" * 40).open("a" * 32, sealed) is None
    assert sealer.seal("a" * 32, DETAILS) != sealed  # a fresh nonce each time
