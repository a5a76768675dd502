"""Settings come from ZHIBAO_* variables and refuse placeholder secrets."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from zhibao_aggregator.settings import AggregatorSettings
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.settings import redacted


def test_environment_configures_ports_and_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAO_INTAKE_PORT", "9101")
    monkeypatch.setenv("ZHIBAO_NATS_URL", "nats://10.0.0.5:4222")
    settings = IntakeSettings()
    assert settings.intake_port == 9101
    assert settings.nats_url == "nats://10.0.0.5:4222"


@pytest.mark.parametrize(
    ("secret", "rule"),
    [
        ("changeme", "placeholder"),
        ("k3y-too-short-1234", "shorter than 32"),
        # as long as a real key, and accepted before (an attack review's list)
        ("changeme" * 4, "placeholder"),
        ("x" * 32, "placeholder"),
        ("0" * 32, "repetitive"),
        ("your-pseudonym-key-goes-here-xxxxx", "placeholder"),
        ("<generate with openssl rand -hex 24>", "placeholder"),
        ("please-replace-me-with-a-real-key-0123", "placeholder"),
    ],
)
def test_placeholder_pseudonym_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str, rule: str
) -> None:
    monkeypatch.setenv("ZHIBAO_PSEUDONYM_KEY", secret)
    with pytest.raises(ValidationError, match=rule):
        IntakeSettings()


@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_urlsafe(32),
        secrets.token_hex(24),
        "deploy-test-pseudonym-key-0123456789abcdef",
        # what password managers and passphrase generators make (a review found these
        # refused by marks matched anywhere: "<", ">", "...", "change")
        "q<3Z>k9...Lm!vR2@wT7#pY4$sU8%xN1",
        "exchange-orbit-vivid-lantern-moss-quartz",
    ],
    ids=["token_urlsafe", "token_hex", "deploy_tests_key", "pwgen_symbols", "passphrase"],
)
def test_a_generated_pseudonym_key_is_taken(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("ZHIBAO_PSEUDONYM_KEY", secret)
    key = IntakeSettings().pseudonym_key
    assert key is not None and key.get_secret_value() == secret


def test_nats_urls_are_logged_without_their_passwords() -> None:
    cluster = "tls://intake:s3cret-pw@nats-1:4222, tls://intake:s3cret-pw@nats-2:4222"
    shown = redacted(cluster)
    assert "s3cret-pw" not in shown
    assert shown == "tls://intake:***@nats-1:4222,tls://intake:***@nats-2:4222"
    assert redacted("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


def test_the_dashboard_feed_url_refuses_an_empty_server_entry() -> None:
    with pytest.raises(ValidationError, match="empty server entry"):
        AggregatorSettings(dashboard_nats_url="nats://a:4222,,nats://b:4222")
