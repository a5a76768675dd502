"""The alerts service's consumer of the response service's task messages.

A durable pull consumer of its own on ``ZHIBAO_TASKS`` (the events consumer and its
per-event cost are untouched), reading only ``overdue`` and ``changed`` messages of the
service's districts (``ZHIBAO_ALERTS_DISTRICTS``), in batches: one transaction each,
through the shared :class:`~zhibao_shared.stream_feed.StreamFeed` (acked after the
commit, nak'd on error, undecodable messages parked on the dead-letter stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg

from zhibao_shared.subjects import task_event_filters
from zhibao_shared.task_events import TaskEvent, TaskMessage

#: The task events the alerts service reads (issues and acceptances are not its concern).
READ_EVENTS = (TaskEvent.OVERDUE, TaskEvent.CHANGED)

ApplyTasks = Callable[[Sequence[TaskMessage]], Awaitable[None]]


def task_filters(districts: Sequence[str]) -> tuple[str, ...]:
    """Subject filters: the overdue and changed messages of these districts (all: none)."""
    return tuple(task_event_filters(districts, READ_EVENTS))


def decode(msg: Msg) -> TaskMessage:
    """A task message (``ValueError`` when the message is not one)."""
    return TaskMessage.model_validate_json(msg.data)
