"""Reads and writes of the alerts schema, on a connection the caller's transaction owns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    Integer,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts.domain.clusters import Fever
from zhibao_alerts.domain.silences import InForce, stored_matchers
from zhibao_alerts.tables import (
    alerts,
    applied_events,
    case_persons,
    community_activity,
    daily_counts,
    daily_reports,
    event_records,
    fevers,
    isolations,
    notifications,
    person_days,
    silences,
    timeline,
    unit_first_days,
)
from zhibao_shared.bulk import Insert, insert_many
from zhibao_shared.db import UtcDateTime

#: Open, but paging nobody: its rule says so (``task_overdue.page: false``).
RECORDED = "recorded"
OPEN_STATES = ("firing", "acknowledged", "silenced", RECORDED)


_APPLIED = Insert(applied_events.name, ("dedup_key",))


async def new_keys(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    """The keys not applied yet: neither recorded (``event_records``: every event a rule
    looks at, see ``correcting.prepare``) nor marked applied (:func:`mark_applied`)."""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return set()
    applied, recorded = applied_events.c.dedup_key, event_records.c.dedup_key
    seen = set(
        (
            await conn.execute(
                union_all(
                    select(applied).where(applied.in_(unique)),
                    select(recorded).where(recorded.in_(unique)),
                )
            )
        ).scalars()
    )
    return {k for k in unique if k not in seen}


async def mark_applied(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """Mark applied the new events that leave no record (corrections, events no rule looks
    at), in the transaction of their effects; a recorded event is marked by its record."""
    await insert_many(conn, _APPLIED, [(k,) for k in sorted(keys)])


async def add_fevers(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Remember fevers at places (for cluster detection):
    ``dedup_key, community, place, at, person``."""
    if rows:
        await conn.execute(insert(fevers), list(rows))


async def fevers_between(
    conn: AsyncConnection, spans: dict[tuple[str, str], tuple[datetime, datetime]]
) -> dict[tuple[str, str], list[Fever]]:
    """The fevers of each (community, place) within its (since, until) span, in time
    order, in one query."""
    if not spans:
        return {}
    within = [
        and_(
            fevers.c.community == community,
            fevers.c.place == place,
            fevers.c.at >= since,
            fevers.c.at <= until,
        )
        for (community, place), (since, until) in spans.items()
    ]
    query = (
        select(
            fevers.c.community,
            fevers.c.place,
            fevers.c.dedup_key,
            fevers.c.at,
            fevers.c.person,
            fevers.c.cluster_day,
        )
        .where(or_(*within))
        .order_by(fevers.c.at, fevers.c.dedup_key)
    )
    found: dict[tuple[str, str], list[Fever]] = {key: [] for key in spans}
    for community, place, key, at, person, day in await conn.execute(query):
        found[(community, place)].append(Fever(key, at, person, day))
    return found


async def mark_clusters(conn: AsyncConnection, marks: dict[str, date]) -> None:
    """Note the cluster window (day) fevers were counted in (by dedup key)."""
    if marks:
        await conn.execute(
            update(fevers)
            .where(fevers.c.dedup_key == bindparam("b_key"))
            .values(cluster_day=bindparam("b_day", type_=Date)),
            [{"b_key": key, "b_day": day} for key, day in marks.items()],
        )


async def note_first_days(conn: AsyncConnection, first: dict[str, date]) -> None:
    """Remember the first day each unit sent anything (an earlier, late day moves it)."""
    if not first:
        return
    stored = await first_days(conn, first)
    new = [{"unit": u, "day": d} for u, d in first.items() if u not in stored]
    earlier = [{"b_unit": u, "b_day": d} for u, d in first.items() if u in stored and d < stored[u]]
    if new:
        await conn.execute(insert(unit_first_days), new)
    if earlier:
        await conn.execute(
            update(unit_first_days)
            .where(unit_first_days.c.unit == bindparam("b_unit"))
            .values(day=bindparam("b_day", type_=Date)),
            earlier,
        )


async def first_days(conn: AsyncConnection, units: Iterable[str]) -> dict[str, date]:
    """The first day of data of each of these units that has any."""
    query = select(unit_first_days.c.unit, unit_first_days.c.day).where(
        unit_first_days.c.unit.in_(set(units))
    )
    return {unit: day for unit, day in await conn.execute(query)}


async def new_person_days(
    conn: AsyncConnection, wanted: set[tuple[str, str, date, str]]
) -> set[tuple[str, str, date, str]]:
    """Which (unit, metric, day, pid) were not counted yet; records them (one read, one
    insert)."""
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
    new = wanted - {(u, m, d, p) for u, m, d, p in rows}
    if new:
        await conn.execute(
            insert(person_days),
            [{"unit": u, "metric": m, "day": d, "pid": p} for u, m, d, p in sorted(new)],
        )
    return new


async def new_case_persons(
    conn: AsyncConnection, wanted: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (rule, pid) no alert was raised for yet; records them."""
    if not wanted:
        return set()
    rows = await conn.execute(
        select(case_persons.c.rule, case_persons.c.pid).where(
            case_persons.c.pid.in_({p for _, p in wanted})
        )
    )
    new = wanted - {(r, p) for r, p in rows}
    if new:
        await conn.execute(insert(case_persons), [{"rule": r, "pid": p} for r, p in sorted(new)])
    return new


async def add_counts(conn: AsyncConnection, deltas: dict[tuple[str, str, date], int]) -> None:
    """Add to daily counters: one read of the existing ones, one update, one insert
    (select-then-write: portable between SQLite and PostgreSQL)."""
    if not deltas:
        return
    existing = await _existing_counts(conn, deltas)
    updates = [
        {"b_unit": u, "b_metric": m, "b_day": d, "b_delta": n}
        for (u, m, d), n in deltas.items()
        if (u, m, d) in existing
    ]
    inserts = [
        {"unit": u, "metric": m, "day": d, "value": n}
        for (u, m, d), n in deltas.items()
        if (u, m, d) not in existing
    ]
    if updates:
        key = and_(
            daily_counts.c.unit == bindparam("b_unit"),
            daily_counts.c.metric == bindparam("b_metric"),
            daily_counts.c.day == bindparam("b_day"),
        )
        increment = daily_counts.c.value + bindparam("b_delta", type_=BigInteger)
        await conn.execute(update(daily_counts).where(key).values(value=increment), updates)
    if inserts:
        await conn.execute(insert(daily_counts), inserts)


async def _existing_counts(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, date]]
) -> set[tuple[str, str, date]]:
    wanted = set(keys)
    rows = await conn.execute(
        select(daily_counts.c.unit, daily_counts.c.metric, daily_counts.c.day).where(
            daily_counts.c.unit.in_({u for u, _, _ in wanted}),
            daily_counts.c.metric.in_({m for _, m, _ in wanted}),
            daily_counts.c.day.in_({d for _, _, d in wanted}),
        )
    )
    return {(u, m, d) for u, m, d in rows if (u, m, d) in wanted}


async def daily_values(
    conn: AsyncConnection, series: Iterable[tuple[str, str]], first: date, last: date
) -> dict[tuple[str, str, date], int]:
    """Daily counter values of several (unit, metric) series between two days, in one query
    (days without a row are absent: they count 0)."""
    wanted = set(series)
    if not wanted:
        return {}
    rows = await conn.execute(
        select(
            daily_counts.c.unit, daily_counts.c.metric, daily_counts.c.day, daily_counts.c.value
        ).where(
            daily_counts.c.unit.in_({u for u, _ in wanted}),
            daily_counts.c.metric.in_({m for _, m in wanted}),
            daily_counts.c.day >= first,
            daily_counts.c.day <= last,
        )
    )
    return {(u, m, d): int(v) for u, m, d, v in rows if (u, m) in wanted}


async def alerts_with_keys(conn: AsyncConnection, keys: Iterable[str]) -> list[Row[int, str, str]]:
    """The id, state and dedup key of every alert with one of these keys, oldest first."""
    wanted = set(keys)
    if not wanted:
        return []
    query = (
        select(alerts.c.id, alerts.c.state, alerts.c.dedup_key)
        .where(alerts.c.dedup_key.in_(wanted))
        .order_by(alerts.c.id)
    )
    return list((await conn.execute(query)).all())


async def count_again(conn: AsyncConnection, counted: Sequence[dict[str, Any]]) -> None:
    """Add occurrences to alerts and give them the latest summaries (and upper bounds).

    Each row has ``id``, ``times``, ``summary_zh``, ``summary_en`` and ``upper_bound``
    (None keeps the stored one).
    """
    for with_bound in (True, False):
        rows = [
            {f"b_{k}": v for k, v in row.items()}
            for row in counted
            if (row["upper_bound"] is not None) is with_bound
        ]
        if not rows:
            continue
        values: dict[str, Any] = {
            "occurrences": alerts.c.occurrences + bindparam("b_times", type_=Integer),
            "summary_zh": bindparam("b_summary_zh"),
            "summary_en": bindparam("b_summary_en"),
        }
        if with_bound:
            values["upper_bound"] = bindparam("b_upper_bound", type_=Float)
        else:
            rows = [{k: v for k, v in r.items() if k != "b_upper_bound"} for r in rows]
        statement = update(alerts).where(alerts.c.id == bindparam("b_id")).values(**values)
        await conn.execute(statement, rows)


async def insert_alerts(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> dict[str, Row[Any]]:
    """Store new alerts, their dedup keys distinct, in as few statements as the driver
    allows; returns each stored alert (every column, defaults filled in) by its dedup key
    (SQLite cannot return the rows of one statement in the order of its parameters)."""
    if not rows:
        return {}
    result = await conn.execute(insert(alerts).returning(*alerts.c), list(rows))
    stored = {row.dedup_key: row for row in result.all()}
    if len(stored) != len(rows):
        raise ValueError(f"{len(rows)} new alerts with {len(stored)} distinct dedup keys")
    return stored


async def update_alert(conn: AsyncConnection, alert_id: int, **values: Any) -> None:
    """Change fields of an alert."""
    await conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


async def set_state(conn: AsyncConnection, alert_ids: Iterable[int], state: str) -> None:
    """Put alerts in ``state``."""
    await conn.execute(update(alerts).where(alerts.c.id.in_(list(alert_ids))).values(state=state))


async def move_alert(
    conn: AsyncConnection, alert_id: int, expected_state: str, **values: Any
) -> bool:
    """Change fields of an alert only if it is still in ``expected_state`` (what the
    caller read); False when someone changed it meanwhile (an acknowledgement, say),
    which then stands."""
    result = await conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.state == expected_state)
        .values(**values)
    )
    return bool(result.rowcount)


async def note(
    conn: AsyncConnection,
    alert_id: int,
    at: datetime,
    action: str,
    actor: str | None = None,
    detail: str | None = None,
    person: str | None = None,
) -> None:
    """Append to an alert's timeline (``person``: the person who acted, when one did)."""
    await add_notes(conn, [note_row(alert_id, at, action, actor, detail, person)])


def note_row(
    alert_id: int,
    at: datetime,
    action: str,
    actor: str | None = None,
    detail: str | None = None,
    person: str | None = None,
) -> dict[str, Any]:
    """One entry of an alert's timeline, as :func:`add_notes` takes it."""
    return {
        "alert_id": alert_id,
        "at": at,
        "action": action,
        "actor": actor,
        "detail": detail,
        "person": person,
    }


async def add_notes(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Append to the timelines of several alerts in one statement (rows of
    :func:`note_row`)."""
    if rows:
        await conn.execute(insert(timeline), list(rows))


async def enqueue(conn: AsyncConnection, rows: Iterable[dict[str, Any]]) -> int:
    """Put notifications in the outbox, skipping ones already there; returns how many."""
    rows = list(rows)
    return await add_notifications(conn, rows, await _queued(conn, rows))


async def add_notifications(
    conn: AsyncConnection,
    rows: Iterable[dict[str, Any]],
    queued: set[tuple[int, str, str, str]] | None = None,
) -> int:
    """Put notifications in the outbox, each (alert, reason, channel, target) once and
    none of ``queued`` (those already there: none for alerts opened in this transaction,
    so no need to look); returns how many."""
    queued = set() if queued is None else queued
    new: list[dict[str, Any]] = []
    for row in rows:
        key = (row["alert_id"], row["reason"], row["channel"], row["target"])
        if key not in queued:
            queued.add(key)
            new.append(row)
    if new:
        await conn.execute(insert(notifications), new)
    return len(new)


async def _queued(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> set[tuple[int, str, str, str]]:
    """Which of the rows' (alert, reason, channel, target) are in the outbox already."""
    if not rows:
        return set()
    query = select(
        notifications.c.alert_id,
        notifications.c.reason,
        notifications.c.channel,
        notifications.c.target,
    ).where(
        notifications.c.alert_id.in_({r["alert_id"] for r in rows}),
        notifications.c.reason.in_({r["reason"] for r in rows}),
    )
    return {(a, r, c, t) for a, r, c, t in await conn.execute(query)}


async def groups_due(
    conn: AsyncConnection, groups: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    """When the pending, never-tried notifications of each (unit, rule) are due, for the
    groups that have any (a new alert of the group joins them, as in Alertmanager's
    group_wait)."""
    wanted = set(groups)
    if not wanted:
        return {}
    query = (
        select(alerts.c.unit, alerts.c.rule, func.min(notifications.c.next_attempt_at))
        .select_from(notifications.join(alerts, alerts.c.id == notifications.c.alert_id))
        .where(
            alerts.c.unit.in_({unit for unit, _ in wanted}),
            alerts.c.rule.in_({rule for _, rule in wanted}),
            notifications.c.status == "pending",
            notifications.c.attempts == 0,
        )
        .group_by(alerts.c.unit, alerts.c.rule)
    )
    rows = (await conn.execute(query)).all()
    return {(unit, rule): due for unit, rule, due in rows if (unit, rule) in wanted}


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


async def note_activity(
    conn: AsyncConnection, latest: Mapping[str, datetime], known: Mapping[str, datetime]
) -> dict[str, datetime]:
    """Remember the latest time each community sent anything; returns the times stored
    now for the batch's communities.

    ``known`` holds times this instance knows are stored (a lower bound: another
    instance may have stored later ones): only communities it lacks are read, and only
    times later than it are written, each by an update that never moves a time back.
    """
    unknown = [c for c in latest if c not in known]
    current = {c: known[c] for c in latest if c in known}
    if unknown:
        rows = await conn.execute(
            select(community_activity.c.community, community_activity.c.last_event_at).where(
                community_activity.c.community.in_(unknown)
            )
        )
        current |= {community: at for community, at in rows}
    new = [{"community": c, "last_event_at": at} for c, at in latest.items() if c not in current]
    later = [
        {"b_community": c, "b_at": at}
        for c, at in latest.items()
        if c in current and at > current[c]
    ]
    if new:
        await conn.execute(insert(community_activity), new)
    if later:
        at = bindparam("b_at", type_=UtcDateTime())
        await conn.execute(
            update(community_activity)
            .where(
                community_activity.c.community == bindparam("b_community"),
                community_activity.c.last_event_at < at,
            )
            .values(last_event_at=at),
            later,
        )
    return {c: max(at, current.get(c, at)) for c, at in latest.items()}


@dataclass(frozen=True)
class IsolationNote:
    """One isolation event as the watchdog tracks it."""

    pid: str
    community: str
    action: str
    at: datetime
    #: the event's identity (of two at the same time, the later identity decides)
    key: str = ""


#: The last check of an isolation none of whose events to arrive so far is a start or a
#: check (its end or a breach came first; the column is required; every start or check,
#: however old, is later).
NO_CHECK_YET = datetime(1970, 1, 1, tzinfo=UTC)


async def note_isolations(conn: AsyncConnection, notes: Sequence[IsolationNote]) -> None:
    """Track isolations in event time: the latest start or end decides whether one is
    open, whatever order they arrive in; only a start or a check moves the last check.

    The notes are folded in memory onto the stored rows (one read), then written back
    with one insert and one update.
    """
    if not notes:
        return
    rows = await conn.execute(
        select(
            isolations.c.pid,
            isolations.c.community,
            isolations.c.last_check_at,
            isolations.c.active,
            isolations.c.status_at,
            isolations.c.status_key,
        ).where(isolations.c.pid.in_({n.pid for n in notes}))
    )
    stored = {
        pid: {
            "community": c,
            "last_check_at": at,
            "active": active,
            "status_at": status,
            "status_key": key,
        }
        for pid, c, at, active, status, key in rows
    }
    state: dict[str, dict[str, Any]] = {}
    for n in notes:
        state[n.pid] = _isolation_after(state.get(n.pid) or stored.get(n.pid), n)
    new = [{"pid": pid, **v} for pid, v in state.items() if pid not in stored]
    changed = [
        {"b_pid": pid, **{f"b_{k}": v for k, v in row.items()}}
        for pid, row in state.items()
        if pid in stored
    ]
    if new:
        await conn.execute(insert(isolations), new)
    if changed:
        await conn.execute(
            update(isolations)
            .where(isolations.c.pid == bindparam("b_pid"))
            .values(
                community=bindparam("b_community"),
                last_check_at=bindparam("b_last_check_at", type_=UtcDateTime()),
                active=bindparam("b_active"),
                status_at=bindparam("b_status_at", type_=UtcDateTime()),
                status_key=bindparam("b_status_key"),
            ),
            changed,
        )


def _isolation_after(row: dict[str, Any] | None, note: IsolationNote) -> dict[str, Any]:
    """An isolation's row after one more event (``row`` is None when it is the first).

    The row depends on which events arrived, not in which order:

    * the last check is the latest start or check in event time (a start is the first
      contact); an end or a breach is no check, so an isolation none of whose events is
      a start or check has none yet (:data:`NO_CHECK_YET`);
    * as in the aggregator's person figures, a start opens and an end closes, in event
      time (of two at the same time, the one with the later identity decides, as the
      aggregator orders a person's facts): an event older than the latest start/end
      does not change whether the isolation is open. Until a start or end arrives, a
      check counts as open, as before (its start may come later, or may not reach this
      service); a breach alone opens nothing (the aggregator counts no isolation for it
      either).
    """
    if row is None:
        row = {
            "community": note.community,
            "last_check_at": NO_CHECK_YET,
            "active": 0,
            "status_at": None,
            "status_key": None,
        }
    row = dict(row)
    if note.action in ("start", "check") and note.at > row["last_check_at"]:
        row["last_check_at"] = note.at
    status_at = row["status_at"]
    if note.action in ("start", "end"):
        if status_at is None or (note.at, note.key) >= (status_at, row["status_key"] or ""):
            row["active"] = 1 if note.action == "start" else 0
            row["status_at"] = note.at
            row["status_key"] = note.key
            row["community"] = note.community
    elif note.action == "check" and status_at is None:
        row["active"] = 1
    return row


async def note_daily_reports(conn: AsyncConnection, reports: set[tuple[str, date]]) -> None:
    """Remember which (community, day) the communities closed."""
    if not reports:
        return
    rows = await conn.execute(
        select(daily_reports.c.community, daily_reports.c.day).where(
            daily_reports.c.community.in_({c for c, _ in reports}),
            daily_reports.c.day.in_({d for _, d in reports}),
        )
    )
    new = reports - {(community, day) for community, day in rows}
    if new:
        await conn.execute(
            insert(daily_reports), [{"community": c, "day": d} for c, d in sorted(new)]
        )


async def active_silences(conn: AsyncConnection, now: datetime) -> list[InForce]:
    """Silences in force at ``now`` with their matchers and units."""
    rows = await conn.execute(
        select(silences.c.id, silences.c.matchers, silences.c.units).where(
            silences.c.starts_at <= now, silences.c.ends_at > now
        )
    )
    found: list[InForce] = []
    for sid, text, units in rows:
        matchers = stored_matchers(json.loads(text))
        if matchers is not None:
            covered = tuple(json.loads(units)) if units else None
            found.append(InForce(sid, matchers, covered))
    return found
