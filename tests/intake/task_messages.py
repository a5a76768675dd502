"""Task messages as the response service announces them, published into ZHIBAO_TASKS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import nats

from zhibao_shared.subjects import task_subject
from zhibao_shared.task_events import TaskEvent, TaskState, task_message


async def announce(
    nats_url: str,
    event: TaskEvent,
    task: str,
    unit: str,
    state: TaskState = TaskState.ISSUED,
    *,
    kind: str = "verify_contact",
    requires_visit: bool = False,
    pid: str | None = "ab" * 16,
) -> None:
    """Store one task message in the tasks stream (as the response service's outbox does)."""
    now = datetime.now(UTC)
    message = task_message(
        event,
        task=task,
        unit=unit,
        kind=kind,
        due=now + timedelta(hours=4),
        state=state,
        pid=pid,
        at=now,
        requires_visit=requires_visit,
    )
    bus = await nats.connect(nats_url)
    try:
        await bus.jetstream().publish(
            task_subject(unit, event.value),
            message.model_dump_json().encode(),
            headers={"Nats-Msg-Id": uuid.uuid4().hex},
        )
    finally:
        await bus.drain()
