"""Reads and writes for corrections: event records, held corrections, and the derived rows
a correction takes back (on a connection the caller's transaction owns)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts.domain.clusters import Fever
from zhibao_alerts.domain.corrections import Decision, Precedence, Recorded
from zhibao_alerts.tables import (
    COUNTING,
    alerts,
    case_persons,
    daily_reports,
    event_records,
    fevers,
    held_corrections,
    isolations,
    notifications,
    person_days,
)
from zhibao_shared.bulk import Insert, bind_rows, insert_many
from zhibao_shared.db import UtcDateTime
from zhibao_shared.events import rank_kept, ranked


@dataclass(frozen=True)
class RecordRow:
    """An event record and the (rank, time, identity) of the correction that decided it."""

    recorded: Recorded
    decided: Precedence | None


def _recorded(row: Any) -> Recorded:
    data = json.loads(row.data) if row.data is not None else None
    return Recorded(row.dedup_key, row.type, row.community, row.at, data, row.level)


def record_values(
    recorded: Recorded, day: date, pid: str | None, decided: Precedence | None
) -> dict[str, Any]:
    """An ``event_records`` row."""
    return {
        "dedup_key": recorded.key,
        "type": recorded.type,
        "community": recorded.community,
        "at": recorded.at,
        "day": day,
        "pid": pid,
        "data": json.dumps(recorded.data, ensure_ascii=False) if recorded.data else None,
        "decided_at": decided[1] if decided else None,
        "decided_by": decided[2] if decided else None,
        "ranked_by": ranked(decided[0], decided[2]) if decided else None,
        "level": recorded.level,
    }


def uncounted_values(
    key: str,
    event_type: str,
    community: str,
    at: datetime,
    day: date,
    pid: str | None,
    level: str | None,
) -> dict[str, Any]:
    """The ``event_records`` row of a new event that counts towards nothing and that no
    correction decided (what :func:`record_values` gives for it, without the records)."""
    return {
        "dedup_key": key,
        "type": event_type,
        "community": community,
        "at": at,
        "day": day,
        "pid": pid,
        "data": None,
        "decided_at": None,
        "decided_by": None,
        "ranked_by": None,
        "level": level,
    }


_ADD_RECORDS = Insert.of(event_records)


async def add_records(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Record applied events (rows of :func:`record_values`): one per event, so written
    as the driver's executemany."""
    if rows:
        await insert_many(conn, _ADD_RECORDS, bind_rows(conn, event_records, rows))


async def records(conn: AsyncConnection, keys: Iterable[str]) -> dict[str, RecordRow]:
    """The records of these events that exist, by identity."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = await conn.execute(select(event_records).where(event_records.c.dedup_key.in_(wanted)))
    return {
        row.dedup_key: RecordRow(
            _recorded(row),
            _decided(row),
        )
        for row in rows
    }


def _decided(row: Any) -> Precedence | None:
    """The (rank, time, identity) of the correction that decided a record; rank 0 (a
    community's) when no rank is kept for it (:func:`~zhibao_shared.events.rank_kept`)."""
    if row.decided_by is None:
        return None
    return (rank_kept(row.ranked_by, row.decided_by), row.decided_at, row.decided_by)


#: What a correction never changes in a record (a replace keeps type, subject and time).
_FIXED = ("dedup_key", "type", "community", "at", "level")


async def update_records(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write records back as a correction decided them (rows of :func:`record_values`)."""
    if not rows:
        return
    await conn.execute(
        update(event_records)
        .where(event_records.c.dedup_key == bindparam("b_key"))
        .values(
            day=bindparam("b_day", type_=Date),
            pid=bindparam("b_pid"),
            data=bindparam("b_data"),
            decided_at=bindparam("b_decided_at", type_=UtcDateTime()),
            decided_by=bindparam("b_decided_by"),
            ranked_by=bindparam("b_ranked_by"),
        ),
        [
            {"b_key": row["dedup_key"], **{f"b_{k}": v for k, v in row.items() if k not in _FIXED}}
            for row in rows
        ],
    )


async def counted_of_persons(
    conn: AsyncConnection, pids: Iterable[str], types: Iterable[str]
) -> list[Recorded]:
    """The records of these types naming these persons that count towards anything, in
    event time."""
    wanted = set(pids)
    if not wanted:
        return []
    query = (
        select(event_records)
        .where(
            event_records.c.pid.in_(wanted),
            event_records.c.type.in_(set(types)),
            COUNTING,
        )
        .order_by(event_records.c.at, event_records.c.dedup_key)
    )
    return [_recorded(row) for row in await conn.execute(query)]


async def counted_of_days(
    conn: AsyncConnection, event_type: str, days: Iterable[tuple[str, date]]
) -> list[Recorded]:
    """The records of ``event_type`` of these (community, day) that count towards anything."""
    wanted = set(days)
    if not wanted:
        return []
    query = select(event_records).where(
        event_records.c.type == event_type,
        event_records.c.community.in_({c for c, _ in wanted}),
        event_records.c.day.in_({d for _, d in wanted}),
        COUNTING,
    )
    rows = (await conn.execute(query)).all()
    return [_recorded(row) for row in rows if (row.community, row.day) in wanted]


async def hold(conn: AsyncConnection, decisions: Sequence[Decision]) -> None:
    """Keep corrections whose event has not arrived."""
    if not decisions:
        return
    await conn.execute(
        insert(held_corrections),
        [
            {
                "dedup_key": d.key,
                "corrects": d.corrects,
                "at": d.at,
                "action": d.action,
                "type": d.type,
                "data": json.dumps(d.data, ensure_ascii=False) if d.data is not None else None,
                "reason": d.reason,
                "reporter": d.reporter,
                "receivedat": d.receivedat,
                "level": d.level,
            }
            for d in decisions
        ],
    )


#: Whether any correction is held. Nearly always none is: asking first spares every batch
#: a lookup of each of its events' keys (about 3 % of the consumer's time at 5,000 keys).
_ANY_HELD = select(held_corrections.c.dedup_key).limit(1)


async def held_for(conn: AsyncConnection, keys: Iterable[str]) -> list[Decision]:
    """The held corrections of these events."""
    wanted = set(keys)
    if not wanted or await conn.scalar(_ANY_HELD) is None:
        return []
    rows = await conn.execute(
        select(held_corrections).where(held_corrections.c.corrects.in_(wanted))
    )
    return [
        Decision(
            key=r.dedup_key,
            corrects=r.corrects,
            at=r.at,
            action=r.action,
            type=r.type,
            data=json.loads(r.data) if r.data is not None else None,
            reason=r.reason,
            reporter=r.reporter,
            receivedat=r.receivedat,
            level=r.level,
        )
        for r in rows
    ]


async def release(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """Forget the held corrections of these events (they were applied with them)."""
    wanted = set(keys)
    if wanted:
        await conn.execute(delete(held_corrections).where(held_corrections.c.corrects.in_(wanted)))


async def forget_held_before(conn: AsyncConnection, before: datetime) -> None:
    """Drop held corrections made before ``before``: their events can no longer arrive."""
    await conn.execute(delete(held_corrections).where(held_corrections.c.at < before))


@dataclass(frozen=True)
class RemovedFever:
    """A fever taken out of cluster detection, and the cluster day it was counted in."""

    key: str
    community: str
    place: str
    cluster_day: date | None


async def remove_fevers(conn: AsyncConnection, keys: Iterable[str]) -> list[RemovedFever]:
    """Delete these events' fevers; returns where they were."""
    wanted = set(keys)
    if not wanted:
        return []
    rows = (
        await conn.execute(
            select(
                fevers.c.dedup_key, fevers.c.community, fevers.c.place, fevers.c.cluster_day
            ).where(fevers.c.dedup_key.in_(wanted))
        )
    ).all()
    if rows:
        await conn.execute(delete(fevers).where(fevers.c.dedup_key.in_(wanted)))
    return [RemovedFever(k, c, p, d) for k, c, p, d in rows]


async def cluster_members(
    conn: AsyncConnection, windows: Iterable[tuple[str, str, date]]
) -> dict[tuple[str, str, date], list[Fever]]:
    """The fevers counted in each (community, place, cluster day), in time order."""
    wanted = set(windows)
    if not wanted:
        return {}
    within = [
        and_(fevers.c.community == c, fevers.c.place == p, fevers.c.cluster_day == d)
        for c, p, d in wanted
    ]
    query = select(fevers).where(or_(*within)).order_by(fevers.c.at, fevers.c.dedup_key)
    found: dict[tuple[str, str, date], list[Fever]] = {w: [] for w in wanted}
    for row in await conn.execute(query):
        found[(row.community, row.place, row.cluster_day)].append(
            Fever(row.dedup_key, row.at, row.person, row.cluster_day)
        )
    return found


async def counted_person_days(
    conn: AsyncConnection, wanted: set[tuple[str, str, date, str]]
) -> set[tuple[str, str, date, str]]:
    """Which of these (unit, metric, day, pid) are counted."""
    if not wanted:
        return set()
    rows = await conn.execute(
        select(
            person_days.c.unit, person_days.c.metric, person_days.c.day, person_days.c.pid
        ).where(
            person_days.c.pid.in_({p for _, _, _, p in wanted}),
            person_days.c.day.in_({d for _, _, d, _ in wanted}),
        )
    )
    return wanted & {(u, m, d, p) for u, m, d, p in rows}


async def uncount_person_days(
    conn: AsyncConnection, rows: Iterable[tuple[str, str, date, str]]
) -> None:
    """A person no longer counted in these (unit, metric, day)."""
    for unit, metric, day, pid in sorted(set(rows)):
        await conn.execute(
            delete(person_days).where(
                person_days.c.unit == unit,
                person_days.c.metric == metric,
                person_days.c.day == day,
                person_days.c.pid == pid,
            )
        )


async def forget_case_persons(conn: AsyncConnection, pairs: Iterable[tuple[str, str]]) -> None:
    """These (rule, pid) were never alerted on after all: a new report pages again."""
    for rule, pid in sorted(set(pairs)):
        await conn.execute(
            delete(case_persons).where(case_persons.c.rule == rule, case_persons.c.pid == pid)
        )


async def alerts_by_key(conn: AsyncConnection, keys: Iterable[str]) -> list[Row[Any]]:
    """The alerts with these dedup keys, oldest first."""
    wanted = set(keys)
    if not wanted:
        return []
    query = select(alerts).where(alerts.c.dedup_key.in_(wanted)).order_by(alerts.c.id)
    return list((await conn.execute(query)).all())


async def person_alerts(conn: AsyncConnection, rule: str, pid_shown: str) -> list[Row[Any]]:
    """The alerts of an immediate rule about a person (their windows end with the
    pseudonym's shown part)."""
    query = (
        select(alerts)
        .where(alerts.c.rule == rule, alerts.c.dedup_key.like(f"%:{pid_shown}"))
        .order_by(alerts.c.id)
    )
    return list((await conn.execute(query)).all())


async def set_isolations(conn: AsyncConnection, rows: dict[str, dict[str, Any] | None]) -> None:
    """Write persons' isolations as recomputed (None: no isolation left)."""
    for pid, row in sorted(rows.items()):
        await conn.execute(delete(isolations).where(isolations.c.pid == pid))
        if row is not None:
            await conn.execute(insert(isolations).values(pid=pid, **row))


async def set_daily_reports(
    conn: AsyncConnection, closed: set[tuple[str, date]], open_days: set[tuple[str, date]]
) -> None:
    """Which (community, day) are closed after a correction: ``closed`` are, ``open_days``
    are no longer."""
    for community, day in sorted(open_days - closed):
        await conn.execute(
            delete(daily_reports).where(
                daily_reports.c.community == community, daily_reports.c.day == day
            )
        )
    if closed:
        present = await conn.execute(
            select(daily_reports.c.community, daily_reports.c.day).where(
                daily_reports.c.community.in_({c for c, _ in closed}),
                daily_reports.c.day.in_({d for _, d in closed}),
            )
        )
        new = closed - {(c, d) for c, d in present}
        if new:
            await conn.execute(
                insert(daily_reports), [{"community": c, "day": d} for c, d in sorted(new)]
            )


#: The outbox state of a notification not sent because its alert's evidence was withdrawn.
WITHDRAWN = "withdrawn"


async def withdraw_unsent(conn: AsyncConnection, alert_id: int, reason: str) -> None:
    """An alert's notifications not sent yet are not sent at all (its evidence is gone)."""
    await conn.execute(
        update(notifications)
        .where(notifications.c.alert_id == alert_id, notifications.c.status == "pending")
        .values(status=WITHDRAWN, last_error=reason[:500])
    )
