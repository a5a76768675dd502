"""Property: whatever JSON arrives, intake answers 2xx/4xx, never 5xx (NATS up)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

FIELDS = ["specversion", "id", "source", "type", "subject", "time", "data"]
DATA_FIELDS = ["temperature_c", "site", "person", "symptoms", "compound", "classification"]


@st.composite
def near_valid_events(draw: st.DrawFn) -> Any:
    """Valid events with some fields replaced by arbitrary JSON, to reach deep validation."""
    event = screening(COMMUNITY_A)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2)):
        event[name] = draw(json_values)
    if isinstance(event.get("data"), dict):
        for name in draw(st.lists(st.sampled_from(DATA_FIELDS), max_size=3)):
            event["data"][name] = draw(json_values)
    return event


@pytest.fixture
def token(intake: RunningIntake) -> str:
    """One report token for every example of a test."""
    return intake.token(COMMUNITY_A)


bodies = st.one_of(json_values, near_valid_events(), st.lists(near_valid_events(), max_size=4))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_arbitrary_json_never_causes_a_server_error(
    intake: RunningIntake, token: str, body: Any
) -> None:
    answer = httpx.post(
        f"{intake.url}/v1/events",
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        timeout=10,
    )
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (202, 207, 400, 403, 413, 422)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_cause_a_server_error(
    intake: RunningIntake, token: str, raw: bytes
) -> None:
    answer = httpx.post(
        f"{intake.url}/v1/events",
        content=raw,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        timeout=10,
    )
    assert 400 <= answer.status_code < 500 or answer.status_code in (202, 207)
