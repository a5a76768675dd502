"""Builders of valid reported events and resident IDs for tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from zhibao_shared.resident_id import check_character

COMMUNITY_A = "640106001001"
COMMUNITY_B = "640106002001"
_ids = itertools.count(1)


def resident_id(region: str = "640106", born: date = date(1985, 3, 7), seq: int = 123) -> str:
    """A valid 18-character resident ID."""
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


def screening(
    community: str = COMMUNITY_A,
    *,
    event_id: str | None = None,
    temperature: float = 36.6,
    person: dict[str, str] | None = None,
    when: datetime | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A valid ``zhibao.screening.v1`` event as JSON-ready dict."""
    body: dict[str, Any] = {"temperature_c": temperature, "site": "gate", **data}
    if person is not None:
        body["person"] = person
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{next(_ids)}",
        "source": f"/{community}/gate-3",
        "type": "zhibao.screening.v1",
        "subject": community,
        "time": (when or datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "data": body,
    }


def case(
    community: str = COMMUNITY_A,
    *,
    person: dict[str, str],
    classification: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A valid ``zhibao.case.v1`` event."""
    event = screening(community, event_id=event_id)
    event["type"] = "zhibao.case.v1"
    event["data"] = {"person": person, "classification": classification}
    return event


def correction(
    original: dict[str, Any],
    action: str = "retract",
    *,
    data: dict[str, Any] | None = None,
    reason: str = "entered in error",
    event_id: str | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """A valid ``zhibao.correction.v1`` of ``original`` (a reported event's dict): a
    retraction, or with ``data`` a replacement of the original's type."""
    body: dict[str, Any] = {
        "corrects": {"source": original["source"], "id": original["id"]},
        "action": action,
        "reason": reason,
    }
    if data is not None:
        body |= {"type": original["type"], "data": data}
    community = original["subject"]
    return {
        "specversion": "1.0",
        "id": event_id or f"corr-{next(_ids)}",
        "source": f"/{community}/corrections",
        "type": "zhibao.correction.v1",
        "subject": community,
        "time": (when or datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
        "data": body,
    }
