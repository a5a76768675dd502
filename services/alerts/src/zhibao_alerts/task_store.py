"""Reads and writes of the overdue tasks' records, on the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts.domain.task_overdue import TaskRecord
from zhibao_alerts.tables import task_alerts, timeline
from zhibao_shared.db import UtcDateTime

_FIELDS = ("kind", "due", "overdue_at", "closed_at", "outcome", "to_unit", "alert_id")
#: Still overdue: announced, and not closed since.
_OVERDUE = and_(
    task_alerts.c.overdue_at.is_not(None),
    or_(task_alerts.c.closed_at.is_(None), task_alerts.c.closed_at < task_alerts.c.overdue_at),
)


def _record(row: Any) -> TaskRecord:
    return TaskRecord(row.task, row.unit, *(getattr(row, name) for name in _FIELDS))


async def records(conn: AsyncConnection, tasks: Iterable[str]) -> dict[tuple[str, str], TaskRecord]:
    """The stored records of these tasks (in every unit), by (task, unit)."""
    wanted = sorted(set(tasks))
    if not wanted:
        return {}
    rows = await conn.execute(select(task_alerts).where(task_alerts.c.task.in_(wanted)))
    return {(row.task, row.unit): _record(row) for row in rows}


async def save(
    conn: AsyncConnection, stored: Sequence[TaskRecord], known: set[tuple[str, str]]
) -> None:
    """Insert the new records and update the known ones (one statement each)."""
    values = [
        {"task": r.task, "unit": r.unit, **{name: getattr(r, name) for name in _FIELDS}}
        for r in stored
    ]
    new = [v for v in values if (v["task"], v["unit"]) not in known]
    changed = [
        {f"b_{k}": v for k, v in row.items() if k not in ("kind", "due")}
        for row in values
        if (row["task"], row["unit"]) in known
    ]
    if new:
        await conn.execute(insert(task_alerts), new)
    if changed:
        await conn.execute(
            update(task_alerts)
            .where(
                task_alerts.c.task == bindparam("b_task"),
                task_alerts.c.unit == bindparam("b_unit"),
            )
            .values(
                overdue_at=bindparam("b_overdue_at", type_=UtcDateTime()),
                closed_at=bindparam("b_closed_at", type_=UtcDateTime()),
                outcome=bindparam("b_outcome"),
                to_unit=bindparam("b_to_unit"),
                alert_id=bindparam("b_alert_id", type_=Integer),
            ),
            changed,
        )


async def join(conn: AsyncConnection, members: dict[tuple[str, str], int]) -> None:
    """Note the alert each (task, unit) counts in."""
    if members:
        await conn.execute(
            update(task_alerts)
            .where(
                task_alerts.c.task == bindparam("b_task"),
                task_alerts.c.unit == bindparam("b_unit"),
            )
            .values(alert_id=bindparam("b_alert", type_=Integer)),
            [{"b_task": t, "b_unit": u, "b_alert": a} for (t, u), a in members.items()],
        )


async def overdue_tasks(
    conn: AsyncConnection, alert_ids: Iterable[int]
) -> dict[int, list[tuple[str, datetime]]]:
    """The tasks still overdue in each alert: (task, due)."""
    ids = sorted(set(alert_ids))
    found: dict[int, list[tuple[str, datetime]]] = {i: [] for i in ids}
    if ids:
        query = select(task_alerts.c.alert_id, task_alerts.c.task, task_alerts.c.due).where(
            task_alerts.c.alert_id.in_(ids), _OVERDUE
        )
        for alert_id, task, due in await conn.execute(query):
            found[alert_id].append((task, due))
    return found


async def outcomes(conn: AsyncConnection, alert_id: int) -> dict[str, int]:
    """How the tasks of an alert were closed: outcome -> how many."""
    query = (
        select(task_alerts.c.outcome, func.count())
        .where(task_alerts.c.alert_id == alert_id, task_alerts.c.outcome.is_not(None))
        .group_by(task_alerts.c.outcome)
    )
    return {str(outcome): int(n) for outcome, n in await conn.execute(query)}


async def members(conn: AsyncConnection, alert_id: int, limit: int) -> list[dict[str, Any]]:
    """The tasks of an alert as the API shows them (ids, units, kinds and times only)."""
    query = (
        select(task_alerts)
        .where(task_alerts.c.alert_id == alert_id)
        .order_by(task_alerts.c.due, task_alerts.c.task)
        .limit(limit)
    )
    shown: list[dict[str, Any]] = []
    for row in await conn.execute(query):
        record = _record(row)
        shown.append(
            {
                "task": record.task,
                "unit": record.unit,
                "kind": record.kind,
                "due": record.due.isoformat(),
                "overdue_at": record.overdue_at.isoformat() if record.overdue_at else None,
                "state": "overdue" if record.overdue else record.outcome,
                "closed_at": record.closed_at.isoformat()
                if record.closed_at and not record.overdue
                else None,
                "to_unit": record.to_unit if not record.overdue else None,
            }
        )
    return shown


async def note_each(
    conn: AsyncConnection, notes: dict[int, str], at: datetime, action: str
) -> None:
    """One timeline entry per alert (``detail`` by alert id), in one statement."""
    if notes:
        rows = [
            {"alert_id": alert_id, "at": at, "action": action, "actor": "system", "detail": text}
            for alert_id, text in notes.items()
        ]
        await conn.execute(insert(timeline), rows)


def by_alert(pairs: Iterable[tuple[TaskRecord, int]]) -> dict[int, list[TaskRecord]]:
    """Records grouped by the alert they counted in."""
    grouped: dict[int, list[TaskRecord]] = defaultdict(list)
    for record, alert_id in pairs:
        grouped[alert_id].append(record)
    return grouped
