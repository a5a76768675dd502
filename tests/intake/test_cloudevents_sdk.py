"""A community system using the CloudEvents SDK (as README shows) is understood by intake."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from tests.support.events import COMMUNITY_A
from tests.support.intake import RunningIntake
from tests.support.stream import stored_messages


def test_a_structured_event_from_the_sdk_is_accepted_and_stored(intake: RunningIntake) -> None:
    token = intake.token(COMMUNITY_A)
    event = CloudEvent(
        {
            "id": "g3-sdk-0001",
            "source": f"/{COMMUNITY_A}/gate-3",
            "type": "zhibao.screening.v1",
            "subject": COMMUNITY_A,
            "time": datetime.now(UTC),
        },
        {"temperature_c": 37.6, "site": "gate", "person": {"ref": "door-3-resident-7"}},
    )
    message = to_structured_event(event)
    answer = httpx.post(
        f"{intake.url}/v1/events",
        content=message.body,
        headers={**message.headers, "Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["results"][0]["status"] == "accepted"
    stored = [
        json.loads(payload) for _subject, payload, _headers in stored_messages(intake.nats.url)
    ]
    assert [(e["id"], e["data"]["temperature_c"]) for e in stored] == [("g3-sdk-0001", 37.6)]
