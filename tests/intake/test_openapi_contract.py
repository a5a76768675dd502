"""schemathesis against intake's own OpenAPI spec: no 5xx, responses match the schema."""

from __future__ import annotations

from tests.support.events import COMMUNITY_A
from tests.support.intake import RunningIntake
from tests.support.openapi import check_openapi_conformance


def test_intake_honours_its_openapi_spec(intake: RunningIntake) -> None:
    headers = {"Authorization": f"Bearer {intake.token(COMMUNITY_A)}"}
    checked = check_openapi_conformance(intake.url, headers)
    assert "POST /v1/events" in checked
