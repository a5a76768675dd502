"""Builders of valid key-person and need events (``zhibao.keyperson.v1``, ``zhibao.need.v1``)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.events import COMMUNITY_A

_ids = itertools.count(1)


def _event(
    community: str, kind: str, event_id: str | None, when: datetime | None, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or f"{kind}-{next(_ids)}",
        "source": f"/{community}/care-app",
        "type": f"zhibao.{kind}.v1",
        "subject": community,
        "time": (when or datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "data": data,
    }


def key_person(
    community: str = COMMUNITY_A,
    *,
    person: dict[str, str],
    category: str = "elderly_alone",
    action: str = "register",
    event_id: str | None = None,
    when: datetime | None = None,
    **place: Any,
) -> dict[str, Any]:
    """A valid reported ``zhibao.keyperson.v1`` event."""
    data = {"person": person, "category": category, "action": action, **place}
    return _event(community, "keyperson", event_id, when, data)


def need(
    community: str = COMMUNITY_A,
    *,
    person: dict[str, str],
    category: str = "food",
    urgency: str = "normal",
    event_id: str | None = None,
    when: datetime | None = None,
    **place: Any,
) -> dict[str, Any]:
    """A valid reported ``zhibao.need.v1`` event."""
    data = {"person": person, "category": category, "urgency": urgency, **place}
    return _event(community, "need", event_id, when, data)


def published(document: dict[str, Any], pid: str = "ab" * 16) -> dict[str, Any]:
    """``document`` as intake would publish it (person pseudonymised, attribution added)."""
    data = dict(document["data"], person={"pid": pid})
    return document | {"data": data, "reporter": "tok", "receivedat": document["time"]}
