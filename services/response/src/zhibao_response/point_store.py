"""Storing epidemic points: the point, its measures' tasks and its announcement, in one
transaction (lifting likewise closes the open tasks and announces it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_response.announcements import point_announcement
from zhibao_response.point_tables import point_tasks, points
from zhibao_response.store import Actor, Conflict, NewTask, TaskStore
from zhibao_response.tables import outbox, tasks


@dataclass(frozen=True)
class NewPoint:
    """A point ready to store."""

    id: str
    unit: str
    compound: str | None
    building: str | None
    start: datetime
    reason: str
    measures: list[dict[str, Any]]
    #: The declaring command centre's scope (only one at or above it may lift the point).
    scope: str


class PointStore:
    """Reads and writes points; shares the task store's database and outbox."""

    def __init__(self, engine: AsyncEngine, tasks_store: TaskStore) -> None:
        self._engine = engine
        self._tasks = tasks_store

    async def declare(
        self, point: NewPoint, planned: Sequence[NewTask], actor: Actor, now: datetime
    ) -> dict[str, Any]:
        """Store the point, issue its tasks, announce it; the stored row."""
        row = {
            "id": point.id,
            "unit": point.unit,
            "compound": point.compound,
            "building": point.building,
            "start": point.start,
            "reason": point.reason,
            "measures": json.dumps(point.measures, ensure_ascii=False),
            "declared_by": actor.name,
            "declared_token": actor.token,
            "declared_scope": point.scope,
            "declared_at": now,
            "lifted_at": None,
            "lifted_by": None,
            "lifted_token": None,
            "lift_reason": None,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(points).values(row))
            await self._tasks.issue_within(conn, planned, actor, now)
            if planned:
                links = [
                    {"point_id": point.id, "task_id": t.id, "measure": t.measure or 0}
                    for t in planned
                ]
                await conn.execute(insert(point_tasks), links)
            await conn.execute(insert(outbox).values(point_announcement(row)))
        return row

    async def lift(
        self, point: Row[Any], reason: str, actor: Actor, now: datetime
    ) -> tuple[dict[str, Any], list[str]]:
        """Lift a point (:class:`Conflict` if it was lifted meanwhile); the row and the ids
        of the tasks closed."""
        lifted = {"lifted_at": now, "lifted_by": actor.name, "lifted_token": actor.token}
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(points)
                .where(points.c.id == point.id, points.c.lifted_at.is_(None))
                .values(**lifted, lift_reason=reason)
            )
            if result.rowcount != 1:
                raise Conflict(point.id)
            linked = select(point_tasks.c.task_id).where(point_tasks.c.point_id == point.id)
            ids = list((await conn.execute(linked)).scalars())
            closed = await self._tasks.cancel_within(conn, ids, actor, now) if ids else []
            row = dict(point._mapping) | lifted | {"lift_reason": reason}
            await conn.execute(insert(outbox).values(point_announcement(row)))
        return row, closed

    async def get(self, point_id: str) -> Row[Any] | None:
        """One point, or None."""
        async with self._engine.connect() as conn:
            return (await conn.execute(select(points).where(points.c.id == point_id))).first()

    async def under(self, unit: str) -> list[Row[Any]]:
        """The points of ``unit`` and the units below it, latest first."""
        query = (
            select(points)
            .where(points.c.unit.startswith(unit, autoescape=True))
            .order_by(points.c.declared_at.desc(), points.c.id)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def point_tasks(self, point_ids: Sequence[str]) -> Sequence[Any]:
        """The tasks of these points (point, measure, id, state, due, closed_at)."""
        if not point_ids:
            return []
        query = (
            select(
                point_tasks.c.point_id,
                point_tasks.c.measure,
                tasks.c.id,
                tasks.c.state,
                tasks.c.due,
                tasks.c.closed_at,
            )
            .join(tasks, tasks.c.id == point_tasks.c.task_id)
            .where(point_tasks.c.point_id.in_(list(point_ids)))
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).all()
