"""Applying a batch of task messages: overdue tasks raise ``task_overdue``, closed ones
resolve it. One transaction per batch, idempotent under redelivery (the records say
what is known already)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import care_store, store, task_store
from zhibao_alerts.domain import task_overdue as overdue
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.domain.task_overdue import TaskRecord
from zhibao_alerts.raising import EXPIRED, Raised, Routing, raise_alerts
from zhibao_alerts.tables import alerts
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.task_events import TaskMessage

#: States an alert still follows its tasks in (resolved ones are left alone).
_FOLLOWING = (*store.OPEN_STATES, EXPIRED)
#: (unit, local due day, kind, urgent, grid): one alert each (the grid: an urgent need's).
_Group = tuple[str, date, str, bool, str | None]


class ApplyTaskMessages:
    """The task consumer's batch handler."""

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        routing: Callable[[], Routing],
        timezone: str,
        clock: Callable[[], datetime],
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock
        self._on_alert = on_alert

    async def __call__(self, messages: Sequence[TaskMessage]) -> None:
        """Apply the messages; once committed, tell ``on_alert`` if alerts were opened."""
        notes = [note for m in messages if (note := overdue.note_of(m)) is not None]
        if not notes:
            return
        async with self._engine.begin() as conn:
            # instances sharing the database (a rolling update): one writer per task
            await lock_names(conn, {f"task {note.task}" for note in notes})
            known = await task_store.records(conn, {note.task for note in notes})
            changes = overdue.fold(known, notes)
            await task_store.save(conn, changes.stored, set(known))
            now = self._clock()
            opened, joined = await self._raise(conn, changes.raised, now)
            left = await self._close(conn, changes.closed, now)
            await self._resolve_or_resummarise(conn, joined | left, now)
        if opened and self._on_alert is not None:
            self._on_alert()

    async def _raise(
        self, conn: AsyncConnection, raised: Sequence[TaskRecord], now: datetime
    ) -> tuple[list[int], set[int]]:
        """Raise (or count on) the alert of each group of newly overdue tasks; returns the
        alerts opened and every alert that gained tasks."""
        if not raised:
            return [], set()
        grids = await care_store.grids_of(conn, {r.person for r in raised if r.urgent and r.person})
        groups: dict[_Group, list[TaskRecord]] = defaultdict(list)
        for record in raised:
            grid = grids.get(record.person) if record.urgent and record.person else None
            day = overdue.alert_day(record, self._zone)
            groups[(record.unit, day, record.kind, record.urgent, grid)].append(record)
        rule = self._rules().task_overdue
        triggers: list[Raised] = []
        keys: dict[_Group, str] = {}
        received: dict[tuple[str, date], datetime] = {}
        for group, records in groups.items():
            unit, day, kind, urgent, grid = group
            tasks = [(r.task, r.due) for r in records]
            found = overdue.trigger(unit, kind, day, tasks, rule, self._zone, urgent, grid)
            keys[group] = found.dedup_key
            triggers += [(found, None)] * len(records)  # an occurrence per task
            announced = max(r.overdue_at or now for r in records)
            received[(unit, day)] = max(announced, received.get((unit, day), announced))
        opened = await raise_alerts(conn, triggers, self._routing(), now, self._zone, received)
        alert_of = await self._alerts_of(conn, {t.dedup_key for t, _ in triggers})
        members = {
            r.key: alert_of[keys[group]] for group, records in groups.items() for r in records
        }
        await task_store.join(conn, members)
        joined: dict[int, list[str]] = defaultdict(list)
        for (task, _unit), alert_id in members.items():
            joined[alert_id].append(task)
        details = {a: f"overdue: {overdue.listed(tasks)}" for a, tasks in joined.items()}
        await task_store.note_each(conn, details, now, "tasks_overdue")
        return opened, set(joined)

    @staticmethod
    async def _alerts_of(conn: AsyncConnection, keys: set[str]) -> dict[str, int]:
        """The alert each key's tasks count in: its open (or expired) one, as raising chose."""
        chosen: dict[str, int] = {}
        for row in await store.alerts_with_keys(conn, keys):
            if row.state in _FOLLOWING and row.dedup_key not in chosen:
                chosen[row.dedup_key] = int(row.id)
        return chosen

    @staticmethod
    async def _close(
        conn: AsyncConnection, closed: Sequence[tuple[TaskRecord, int]], now: datetime
    ) -> set[int]:
        """Note on each alert which of its tasks were closed or transferred, and how."""
        grouped = task_store.by_alert(closed)
        details = {a: overdue.closing_detail(records) for a, records in grouped.items()}
        await task_store.note_each(conn, details, now, "tasks_closed")
        return set(grouped)

    async def _resolve_or_resummarise(
        self, conn: AsyncConnection, alert_ids: set[int], now: datetime
    ) -> None:
        """An alert none of whose tasks is still overdue resolves itself (its timeline
        says how they were closed); the others say how many are still overdue."""
        if not alert_ids:
            return
        rows = await conn.execute(
            select(alerts.c.id, alerts.c.unit, alerts.c.window, alerts.c.day).where(
                alerts.c.id.in_(sorted(alert_ids)), alerts.c.state.in_(_FOLLOWING)
            )
        )
        following = list(rows)
        still = await task_store.overdue_tasks(conn, [row.id for row in following])
        for row in following:
            tasks = still[row.id]
            if tasks:
                await self._resummarise(conn, row, tasks)
                continue
            detail = overdue.resolution_detail(await task_store.outcomes(conn, row.id))
            await store.update_alert(
                conn, row.id, state="resolved", resolved_at=now, next_action_at=None
            )
            await store.note(conn, row.id, now, "resolved", actor="system", detail=detail)

    async def _resummarise(
        self, conn: AsyncConnection, row: Any, tasks: list[tuple[str, datetime]]
    ) -> None:
        kind, urgent = overdue.window_kind(row.window), overdue.window_urgent(row.window)
        summary_zh, summary_en = overdue.summaries(
            row.unit, kind, row.day, tasks, self._zone, urgent
        )
        await store.update_alert(conn, row.id, summary_zh=summary_zh, summary_en=summary_en)
