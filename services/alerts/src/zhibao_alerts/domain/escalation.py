"""Escalation: which step of its policy an unacknowledged alert has reached."""

from __future__ import annotations

from datetime import datetime, timedelta

from zhibao_alerts.domain.config import Policy


def due_step(policy: Policy, fired_at: datetime, now: datetime) -> int:
    """Index of the last step whose delay has passed (0 once fired)."""
    elapsed = now - fired_at
    due = 0
    for index, step in enumerate(policy.steps):
        if elapsed >= timedelta(minutes=step.after_minutes):
            due = index
    return due


def reminder_due(policy: Policy, last_notified: datetime, now: datetime) -> bool:
    """True when the current step should be reminded again."""
    return now - last_notified >= timedelta(minutes=policy.repeat_minutes)
