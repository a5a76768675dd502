"""Settings come from ZHIBAO_* variables and refuse placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zhibao_intake.settings import IntakeSettings


def test_environment_configures_ports_and_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAO_INTAKE_PORT", "9101")
    monkeypatch.setenv("ZHIBAO_NATS_URL", "nats://10.0.0.5:4222")
    settings = IntakeSettings()
    assert settings.intake_port == 9101
    assert settings.nats_url == "nats://10.0.0.5:4222"


@pytest.mark.parametrize("secret", ["changeme", "short-but-not-placeholder"])
def test_placeholder_pseudonym_key_is_refused(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("ZHIBAO_PSEUDONYM_KEY", secret)
    with pytest.raises(ValidationError, match="placeholder"):
        IntakeSettings()
