"""Outbox rows announcing declared levels and epidemic points (no personal data).

Written in the same transaction as the declaration or point they announce, and published
by the outbox loop like the task messages (:mod:`zhibao_shared.response_events`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from zhibao_shared.response_events import (
    LevelMessage,
    PointMessage,
    level_subject,
    point_subject,
)

#: What the store calls a lifted level.
LIFTED = "none"


def _row(subject: str, message: LevelMessage | PointMessage) -> dict[str, Any]:
    return {
        "msg_id": uuid.uuid4().hex,
        "subject": subject,
        "body": message.model_dump_json().encode(),
    }


def level_announcement(
    declaration: str, unit: str, level: str, number: int, declared_at: datetime, by: str
) -> dict[str, Any]:
    """The outbox row of a declaration (``level`` ``none``: lifted, announced as null)."""
    message = LevelMessage(
        declaration=declaration,
        unit=unit,
        level=None if level == LIFTED else level,
        number=number,
        declared_at=declared_at,
        declared_by=by,
    )
    return _row(level_subject(unit), message)


def point_announcement(point: dict[str, Any]) -> dict[str, Any]:
    """The outbox row of a point as stored (declared or lifted)."""
    message = PointMessage(
        event="point_lifted" if point["lifted_at"] is not None else "point_declared",
        point=point["id"],
        unit=point["unit"],
        compound=point["compound"],
        building=point["building"],
        start=point["start"],
        declared_at=point["declared_at"],
        declared_by=point["declared_by"],
        lifted_at=point["lifted_at"],
        lifted_by=point["lifted_by"],
    )
    return _row(point_subject(point["unit"]), message)
