"""Declaring response levels and reporting how their measures are going."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from zhibao_response.domain.playbook import GRADES, Playbook, ResponseLevel, plan
from zhibao_response.domain.progress import TaskFacts, progress
from zhibao_response.store import Actor, Declaration, NewTask, TaskStore
from zhibao_response.task_service import new_task_id
from zhibao_shared.hierarchy import Registry
from zhibao_shared.places import Places
from zhibao_shared.task_events import TaskState


class LevelDesk:
    """Declarations: a level's playbook measures become tasks; lifting closes them."""

    def __init__(
        self,
        store: TaskStore,
        registry: Registry,
        playbook: Callable[[], Playbook],
        clock: Callable[[], datetime],
        places: Places | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        #: The registered places a declaration's compounds may name by id (None: none).
        self.places = places
        self._playbook = playbook
        self._clock = clock

    async def declare(
        self,
        unit: str,
        level: ResponseLevel,
        reason: str,
        compounds: tuple[str, ...],
        actor: Actor,
    ) -> dict[str, Any]:
        """Record the declaration and issue (and close) its tasks."""
        now = self._clock()
        measures = self._playbook().measures(level)
        planned = plan(measures, self._registry[unit], self._registry, compounds, now)
        declaration = Declaration(
            id=new_task_id(),
            unit=unit,
            level=level.value,
            reason=reason,
            compounds=compounds,
            measures=[m.model_dump(mode="json") for m in measures],
            declared_by=actor.name,
            declared_at=now,
        )
        new = [
            NewTask(
                new_task_id(),
                p.unit,
                p.kind,
                p.due,
                p.compound,
                declaration_id=declaration.id,
                measure=p.measure,
            )
            for p in planned
        ]
        closed = await self._store.declare(declaration, new, actor)
        return {
            **_declaration_view(declaration),
            "tasks_issued": [t.id for t in new],
            "tasks_closed": closed,
        }

    async def status(self, unit: str) -> dict[str, Any]:
        """A unit's current level, each measure's progress, and every declaration."""
        history = await self._store.declarations(unit)
        out: dict[str, Any] = {"unit": unit, "level": ResponseLevel.NONE.value, "grade": None}
        out["measures"] = []
        if history:
            current = history[0]
            out |= _declaration_view(current)
            out["measures"] = await self._measures(current)
        out["history"] = [_declaration_view(d) for d in history]
        return out

    async def _measures(self, declaration: Declaration) -> list[dict[str, Any]]:
        by_measure: dict[int, list[TaskFacts]] = defaultdict(list)
        for row in await self._store.declared_tasks(declaration.id):
            by_measure[row.measure].append(TaskFacts(TaskState(row.state), row.due, row.closed_at))
        now = self._clock()
        out = []
        for index, measure in enumerate(declaration.measures):
            counted = progress(by_measure.get(index, []), now)
            out.append(
                {
                    **measure,
                    "status": counted.status.value,
                    "tasks": len(by_measure.get(index, [])),
                    "done": counted.done,
                    "late": counted.late,
                    "pending": counted.pending,
                    "missing": counted.missing,
                }
            )
        return out


def _declaration_view(declaration: Declaration) -> dict[str, Any]:
    level = ResponseLevel(declaration.level)
    return {
        "declaration": declaration.id,
        "unit": declaration.unit,
        "level": level.value,
        "grade": GRADES[level],
        "reason": declaration.reason,
        "compounds": list(declaration.compounds),
        "declared_by": declaration.declared_by,
        "declared_at": declaration.declared_at.isoformat(),
    }
