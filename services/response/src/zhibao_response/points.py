"""Declaring and lifting epidemic points (疫点); their measures are issued as tasks exactly
like a level's playbook measures (:func:`zhibao_response.domain.playbook.plan`)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from zhibao_response.domain.playbook import Measure, plan
from zhibao_response.domain.progress import TaskFacts, progress
from zhibao_response.point_store import NewPoint, PointStore
from zhibao_response.store import Actor, NewTask
from zhibao_response.task_service import new_task_id
from zhibao_shared.hierarchy import Registry
from zhibao_shared.task_events import TaskState


class PointDesk:
    """Points: declared with their measures' tasks, listed with their progress, lifted."""

    def __init__(
        self, store: PointStore, registry: Registry, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock

    async def declare(
        self,
        unit: str,
        compound: str | None,
        building: str | None,
        start: datetime | None,
        measures: tuple[Measure, ...],
        reason: str,
        actor: Actor,
        scope: str,
    ) -> dict[str, Any]:
        """Store the point, declared by a command centre of ``scope``, and issue its
        measures' tasks ("compounds" measures go to the point's compound, or to its
        building when it names no compound)."""
        now = self._clock()
        place = compound or building
        assert place is not None
        planned = plan(measures, self._registry[unit], self._registry, (place,), now)
        new = [
            NewTask(new_task_id(), p.unit, p.kind, p.due, p.compound, measure=p.measure)
            for p in planned
        ]
        point = NewPoint(
            new_task_id(),
            unit,
            compound,
            building,
            start or now,
            reason,
            [m.model_dump(mode="json") for m in measures],
            scope,
        )
        row = await self._store.declare(point, new, actor, now)
        return {**view(row), "tasks_issued": [t.id for t in new]}

    async def lift(self, point: Row[Any], reason: str, actor: Actor) -> dict[str, Any]:
        """Lift the point and close its open tasks."""
        row, closed = await self._store.lift(point, reason, actor, self._clock())
        return {**view(row), "tasks_closed": closed}

    async def listed(self, unit: str) -> list[dict[str, Any]]:
        """The points under ``unit`` with each measure's progress."""
        rows = await self._store.under(unit)
        facts: dict[tuple[str, int], list[TaskFacts]] = defaultdict(list)
        for t in await self._store.point_tasks([r.id for r in rows]):
            facts[(t.point_id, t.measure)].append(TaskFacts(TaskState(t.state), t.due, t.closed_at))
        now = self._clock()
        out = []
        for row in rows:
            entry = view(dict(row._mapping))
            measures = []
            for index, measure in enumerate(json.loads(row.measures)):
                found = facts.get((row.id, index), [])
                counted = progress(found, now)
                measures.append(
                    {**measure, "status": counted.status.value, "tasks": len(found)}
                    | {"done": counted.done, "late": counted.late, "missing": counted.missing}
                )
            out.append(entry | {"measures": measures})
        return out


def view(row: dict[str, Any]) -> dict[str, Any]:
    """A point as the API shows it (the declaring token's name, never its id)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row["id"],
        "unit": row["unit"],
        "compound": row["compound"],
        "building": row["building"],
        "start": iso(row["start"]),
        "reason": row["reason"],
        "declared_by": row["declared_by"],
        "declared_at": iso(row["declared_at"]),
        "lifted": row["lifted_at"] is not None,
        "lifted_at": iso(row["lifted_at"]),
        "lifted_by": row["lifted_by"],
        "lift_reason": row["lift_reason"],
    }
