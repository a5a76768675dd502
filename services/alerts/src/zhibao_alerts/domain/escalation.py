"""Escalation: which step of its policy an unacknowledged alert has reached, and when
its next step, reminder or window end is due."""

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


def repeat_interval(policy: Policy, repeat_minutes: float | None = None) -> timedelta:
    """How often the current step is reminded: the alert's own interval, else the policy's."""
    return timedelta(minutes=repeat_minutes or policy.repeat_minutes)


def reminder_due(
    policy: Policy, last_notified: datetime, now: datetime, repeat_minutes: float | None = None
) -> bool:
    """True when the current step should be reminded again."""
    return now - last_notified >= repeat_interval(policy, repeat_minutes)


def next_action(
    policy: Policy,
    *,
    firing: bool,
    step: int,
    fired_at: datetime,
    last_notified: datetime | None,
    repeat_minutes: float | None = None,
    window_ends: datetime | None = None,
) -> datetime | None:
    """The earliest time at which the dispatcher has something to do for an alert:
    its next escalation step or reminder (while firing), or the end of its window;
    None when nothing will ever be due."""
    due = [window_ends] if window_ends is not None else []
    if firing:
        later = [
            fired_at + timedelta(minutes=s.after_minutes)
            for index, s in enumerate(policy.steps)
            if index > step
        ]
        due += [min(later)] if later else []
        due.append((last_notified or fired_at) + repeat_interval(policy, repeat_minutes))
    return min(due) if due else None
