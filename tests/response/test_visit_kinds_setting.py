"""ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS: a comma list of task kinds, checked at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zhibao_response.settings import ResponseSettings


def test_the_default_is_companion_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS", raising=False)
    assert ResponseSettings(_env_file=None).visit_required_kinds() == {"verify_companion"}


def test_a_comma_list_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS", " verify_contact, deliver ,")
    kinds = ResponseSettings(_env_file=None).visit_required_kinds()
    assert kinds == {"verify_contact", "deliver"}


def test_something_that_is_not_a_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS", "verify_contact,Verify Companion")
    with pytest.raises(ValidationError, match="not a task kind"):
        ResponseSettings(_env_file=None)
