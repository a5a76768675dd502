"""What the response service says on the bus about its tasks (``zhibao.tasks.>``).

A task's personal details (the person's ID number, name, phone, address and the
task's note) stay in the response service's encrypted store: a message carries
the task's id, unit, kind, due time, state and the person's pseudonym only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zhibao_shared.events import MAX_ID_LENGTH, MAX_SOURCE_LENGTH, Pseudonym
from zhibao_shared.hierarchy import CODE_LENGTHS, UNIT_CODE

#: The longest event identity (``event_identity``: community, source and id, spaced).
RESULT_KEY_MAX = max(CODE_LENGTHS) + MAX_SOURCE_LENGTH + MAX_ID_LENGTH + 2

TASK_ID = r"^[0-9a-f]{32}$"
TASK_KIND = r"^[a-z][a-z0-9_]{1,39}$"
#: How soon a need's task must be done (:class:`zhibao_shared.care_events.NeedUrgency`).
Urgency = Literal["normal", "urgent"]


class TaskState(StrEnum):
    """Where a task stands. ``cancelled``: closed because its response level was lifted."""

    ISSUED = "issued"
    ACCEPTED = "accepted"
    DONE = "done"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    TRANSFERRED = "transferred"
    CANCELLED = "cancelled"


class TaskEvent(StrEnum):
    """The last token of a task subject: what happened to the task."""

    ISSUED = "issued"
    CHANGED = "changed"
    OVERDUE = "overdue"


class TaskMessage(BaseModel):
    """One task event, published on ``zhibao.tasks.<district>.<unit>.<event>``."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["task_issued", "task_changed", "task_overdue"]
    task: str = Field(pattern=TASK_ID, description="The task's id (as POST /v1/tasks answered)")
    unit: str = Field(pattern=UNIT_CODE, description="The unit the task is assigned to now")
    from_unit: str | None = Field(
        default=None, pattern=UNIT_CODE, description="On a transfer: the unit it came from"
    )
    kind: str = Field(pattern=TASK_KIND, description="verify_contact, disinfect, ...")
    due: AwareDatetime = Field(description="When the task must be done")
    state: TaskState = Field(
        description="The change made (for task_changed; a transferred task is then issued "
        "to its new unit) or the task's state (task_issued, task_overdue)"
    )
    person: Pseudonym | None = Field(
        default=None, description="The person's pseudonym (the same key as intake's)"
    )
    requires_visit: bool = Field(
        default=False,
        description="The task's kind requires a visit: a phone-only result may not close it "
        "(ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS)",
    )
    urgency: Urgency | None = Field(
        default=None,
        description="A need's task (kind need_<category>): normal or urgent; null for others",
    )
    at: datetime = Field(description="When it happened")
    result: str | None = Field(
        default=None,
        max_length=RESULT_KEY_MAX,
        description="On a change a task result made: that result's identity (its community, "
        "source and id), so intake answers a resend of it duplicate, not refused",
    )

    def to_bus(self) -> bytes:
        """The message as published: ``result`` only when a result made the change, so a
        consumer of an earlier release (whose model forbids unknown fields) reads every
        other message during a rolling upgrade."""
        return self.model_dump_json(exclude={"result"} if self.result is None else None).encode()


_EVENT_NAMES: dict[TaskEvent, Literal["task_issued", "task_changed", "task_overdue"]] = {
    TaskEvent.ISSUED: "task_issued",
    TaskEvent.CHANGED: "task_changed",
    TaskEvent.OVERDUE: "task_overdue",
}


def task_message(
    event: TaskEvent,
    *,
    task: str,
    unit: str,
    kind: str,
    due: datetime,
    state: TaskState,
    pid: str | None,
    at: datetime,
    from_unit: str | None = None,
    requires_visit: bool = False,
    urgency: Urgency | None = None,
    result: str | None = None,
) -> TaskMessage:
    """A task message (the only way the response service builds one)."""
    return TaskMessage(
        event=_EVENT_NAMES[event],
        task=task,
        unit=unit,
        from_unit=from_unit,
        kind=kind,
        due=due,
        state=state,
        person=Pseudonym(pid=pid) if pid else None,
        requires_visit=requires_visit,
        urgency=urgency,
        at=at,
        result=result,
    )
