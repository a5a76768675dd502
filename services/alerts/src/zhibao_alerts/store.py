"""Reads and writes of the alerts schema, on a connection the caller's transaction owns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts.domain.silences import Matcher
from zhibao_alerts.tables import (
    alerts,
    applied_events,
    community_activity,
    daily_counts,
    daily_reports,
    fevers,
    isolations,
    notifications,
    silences,
    timeline,
)

OPEN_STATES = ("firing", "acknowledged", "silenced")


async def new_keys(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    """The keys not applied yet; marks them applied (same transaction as their effects)."""
    unique = list(dict.fromkeys(keys))
    seen = set(
        (
            await conn.execute(
                select(applied_events.c.dedup_key).where(applied_events.c.dedup_key.in_(unique))
            )
        ).scalars()
    )
    fresh = [k for k in unique if k not in seen]
    if fresh:
        await conn.execute(insert(applied_events), [{"dedup_key": k} for k in fresh])
    return set(fresh)


async def add_fever(
    conn: AsyncConnection, key: str, community: str, place: str, at: datetime
) -> None:
    """Remember one fever at a place (for cluster detection)."""
    await conn.execute(
        insert(fevers).values(dedup_key=key, community=community, place=place, at=at)
    )


async def fevers_between(
    conn: AsyncConnection, community: str, place: str, since: datetime, until: datetime
) -> int:
    """Fevers at a place within a time window."""
    query = (
        select(func.count())
        .select_from(fevers)
        .where(
            and_(
                fevers.c.community == community,
                fevers.c.place == place,
                fevers.c.at >= since,
                fevers.c.at <= until,
            )
        )
    )
    return int(await conn.scalar(query) or 0)


async def add_counts(conn: AsyncConnection, deltas: dict[tuple[str, str, date], int]) -> None:
    """Add to daily counters (select-then-write: portable between SQLite and PostgreSQL)."""
    for (unit, metric, day), delta in deltas.items():
        key = and_(
            daily_counts.c.unit == unit, daily_counts.c.metric == metric, daily_counts.c.day == day
        )
        result = await conn.execute(
            update(daily_counts).where(key).values(value=daily_counts.c.value + delta)
        )
        if result.rowcount == 0:
            await conn.execute(
                insert(daily_counts).values(unit=unit, metric=metric, day=day, value=delta)
            )


async def series(conn: AsyncConnection, unit: str, metric: str, days: list[date]) -> list[float]:
    """Daily values for ``days`` (0 where nothing was counted)."""
    rows = await conn.execute(
        select(daily_counts.c.day, daily_counts.c.value).where(
            and_(
                daily_counts.c.unit == unit,
                daily_counts.c.metric == metric,
                daily_counts.c.day >= days[0],
                daily_counts.c.day <= days[-1],
            )
        )
    )
    values = {day: value for day, value in rows}
    return [float(values.get(d, 0)) for d in days]


async def open_alert(conn: AsyncConnection, dedup_key: str) -> Row[Any] | None:
    """The firing or acknowledged alert with this key, if any."""
    query = select(alerts).where(alerts.c.dedup_key == dedup_key, alerts.c.state.in_(OPEN_STATES))
    return (await conn.execute(query)).first()


async def latest_alert(conn: AsyncConnection, dedup_key: str) -> Row[Any] | None:
    """The most recent alert with this key, in any state."""
    query = select(alerts).where(alerts.c.dedup_key == dedup_key).order_by(alerts.c.id.desc())
    return (await conn.execute(query.limit(1))).first()


async def insert_alert(conn: AsyncConnection, values: dict[str, Any]) -> int:
    """Store a new alert; returns its id."""
    result = await conn.execute(insert(alerts).values(**values).returning(alerts.c.id))
    return int(result.scalar_one())


async def update_alert(conn: AsyncConnection, alert_id: int, **values: Any) -> None:
    """Change fields of an alert."""
    await conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


async def note(
    conn: AsyncConnection,
    alert_id: int,
    at: datetime,
    action: str,
    actor: str | None = None,
    detail: str | None = None,
) -> None:
    """Append to an alert's timeline."""
    await conn.execute(
        insert(timeline).values(alert_id=alert_id, at=at, action=action, actor=actor, detail=detail)
    )


async def enqueue(conn: AsyncConnection, rows: Iterable[dict[str, Any]]) -> int:
    """Put notifications in the outbox, skipping ones already there; returns how many."""
    added = 0
    for row in rows:
        exists = await conn.scalar(
            select(func.count())
            .select_from(notifications)
            .where(
                and_(
                    notifications.c.alert_id == row["alert_id"],
                    notifications.c.reason == row["reason"],
                    notifications.c.channel == row["channel"],
                    notifications.c.target == row["target"],
                )
            )
        )
        if not exists:
            await conn.execute(insert(notifications).values(**row))
            added += 1
    return added


async def group_due(conn: AsyncConnection, unit: str, rule: str) -> datetime | None:
    """When the pending, never-tried notifications of this unit and rule are due, if any
    (a new alert of the same group joins them, as in Alertmanager's group_wait)."""
    query = (
        select(func.min(notifications.c.next_attempt_at))
        .select_from(notifications.join(alerts, alerts.c.id == notifications.c.alert_id))
        .where(
            alerts.c.unit == unit,
            alerts.c.rule == rule,
            notifications.c.status == "pending",
            notifications.c.attempts == 0,
        )
    )
    due: datetime | None = await conn.scalar(query)
    return due


async def get_alert(conn: AsyncConnection, alert_id: int) -> Row[Any] | None:
    """One alert by id."""
    return (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).first()


async def alert_timeline(conn: AsyncConnection, alert_id: int) -> list[Row[Any]]:
    """An alert's timeline, oldest first."""
    query = select(timeline).where(timeline.c.alert_id == alert_id).order_by(timeline.c.id)
    return list((await conn.execute(query)).all())


async def alert_notifications(conn: AsyncConnection, alert_id: int) -> list[Row[Any]]:
    """An alert's notifications and their delivery state."""
    query = (
        select(notifications)
        .where(notifications.c.alert_id == alert_id)
        .order_by(notifications.c.id)
    )
    return list((await conn.execute(query)).all())


async def note_activity(conn: AsyncConnection, community: str, at: datetime) -> None:
    """Remember the latest time a community sent anything."""
    current = await conn.scalar(
        select(community_activity.c.last_event_at).where(
            community_activity.c.community == community
        )
    )
    if current is None:
        await conn.execute(insert(community_activity).values(community=community, last_event_at=at))
    elif at > current:
        await conn.execute(
            update(community_activity)
            .where(community_activity.c.community == community)
            .values(last_event_at=at)
        )


async def note_isolation(
    conn: AsyncConnection, pid: str, community: str, action: str, at: datetime
) -> None:
    """Track an isolation: start/check refresh the last check, end closes it."""
    row = (await conn.execute(select(isolations).where(isolations.c.pid == pid))).first()
    active = 0 if action == "end" else 1
    if row is None:
        await conn.execute(
            insert(isolations).values(pid=pid, community=community, last_check_at=at, active=active)
        )
        return
    values: dict[str, Any] = {"active": active, "community": community}
    if action in ("start", "check") and at > row.last_check_at:
        values["last_check_at"] = at
    await conn.execute(update(isolations).where(isolations.c.pid == pid).values(**values))


async def note_daily_report(conn: AsyncConnection, community: str, day: date) -> None:
    """Remember that a community closed a day."""
    exists = await conn.scalar(
        select(func.count())
        .select_from(daily_reports)
        .where(daily_reports.c.community == community, daily_reports.c.day == day)
    )
    if not exists:
        await conn.execute(insert(daily_reports).values(community=community, day=day))


async def active_silences(conn: AsyncConnection, now: datetime) -> list[tuple[int, list[Matcher]]]:
    """Silences in force at ``now`` with their matchers."""
    rows = await conn.execute(
        select(silences.c.id, silences.c.matchers).where(
            silences.c.starts_at <= now, silences.c.ends_at > now
        )
    )
    return [(sid, [Matcher.model_validate(m) for m in json.loads(text)]) for sid, text in rows]
