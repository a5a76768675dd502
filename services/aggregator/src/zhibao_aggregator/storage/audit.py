"""The audit trail's read model: storing rows idempotently, reading pages, counting rejections."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.storage.audit_tables import REJECTED, audit_trail
from zhibao_shared.bulk import Insert, bind_rows, ignoring, insert_many

_KEY = ("origin", "seq", "line", "item")
#: Columns the API shows, in this order (the key columns stay internal).
SHOWN = (
    "at",
    "kind",
    "service",
    "type",
    "outcome",
    "code",
    "status",
    "channel",
    "token",
    "token_name",
    "person",
    "unit",
    "event_id",
    "event_source",
    "event_time",
    "target",
    "detail",
)


_STORE = Insert.of(audit_trail, ignoring(audit_trail))


async def store_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Store rows not stored yet: a row already there (a redelivery, another partition
    storing the same record) changes nothing. Moments are stored in UTC on every backend
    (an event's own offset is not kept: it is shown in UTC like every other moment)."""
    if rows:
        ordered = sorted(rows, key=lambda r: tuple(r[k] for k in _KEY))
        await insert_many(conn, _STORE, bind_rows(conn, audit_trail, ordered))


@dataclass(frozen=True)
class TrailQuery:
    """Which rows of the trail to read.

    ``scopes`` are the reader's units: rows of other units, and rows without a unit,
    are never returned. The other fields narrow further (None: no condition).
    """

    scopes: tuple[str, ...]
    unit: str | None = None
    #: A token's id or name.
    reporter: str | None = None
    #: An event type (``zhibao.screening.v1``) or an action (``alert.acknowledged``).
    type: str | None = None
    outcome: str | None = None
    #: From this moment (inclusive) ...
    since: datetime | None = None
    #: ... to this one (exclusive).
    until: datetime | None = None


def _conditions(query: TrailQuery) -> list[Any]:
    t = audit_trail.c
    scoped = or_(false(), *(t.unit.startswith(scope) for scope in query.scopes))
    conditions: list[Any] = [t.unit.is_not(None), scoped]
    if query.unit is not None:
        conditions.append(t.unit.startswith(query.unit))
    if query.reporter is not None:
        conditions.append(or_(t.token == query.reporter, t.token_name == query.reporter))
    if query.type is not None:
        conditions.append(t.type == query.type)
    if query.outcome == "rejected":
        conditions.append(REJECTED)  # in the words of the rejected rows' own index
    elif query.outcome is not None:
        conditions.append(t.outcome == query.outcome)
    if query.since is not None:
        conditions.append(t.at >= query.since.astimezone(UTC))
    if query.until is not None:
        conditions.append(t.at < query.until.astimezone(UTC))
    return conditions


async def read_trail(
    conn: AsyncConnection, query: TrailQuery, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the trail, newest first: the rows after the key ``after`` (the previous
    page's last), and the key to read the next page from (None on the last page)."""
    t = audit_trail.c
    conditions = _conditions(query)
    if after is not None:
        conditions.append(t.sort_key < after)
    statement = (
        select(audit_trail).where(and_(*conditions)).order_by(t.sort_key.desc()).limit(limit + 1)
    )
    rows = (await conn.execute(statement)).all()
    page = rows[:limit]
    following = page[-1].sort_key if len(rows) > limit else None
    return [_shown(r._mapping) for r in page], following


def _shown(row: Any) -> dict[str, Any]:
    out = {name: row[name] for name in SHOWN}
    for name in ("at", "event_time"):
        out[name] = _utc(out[name]).isoformat() if out[name] is not None else None
    out["detail"] = json.loads(out["detail"]) if out["detail"] else None
    return out


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: stored rows are in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RejectedCount:
    """How many events of one community intake rejected on one day, for one reason."""

    community: str
    day: date
    reason: str
    count: int


async def rejected_events(
    conn: AsyncConnection, under: str, first: date, last: date
) -> list[RejectedCount]:
    """Events rejected per (community, day, reason) from ``first`` to ``last`` (inclusive)
    for the communities whose code starts with ``under``.

    The day is when intake received the event, in the district's time zone; the
    reason is intake's rejection code (``null`` codes count as ``unknown``). Events
    whose community could not be read (a malformed or masked subject) are not counted.
    Every submission counts: an event rejected twice counts twice.
    """
    rows = (await conn.execute(rejected_query(under, first, last))).all()
    return [RejectedCount(unit, day, code or "unknown", int(n)) for unit, day, code, n in rows]


def rejected_query(under: str, first: date, last: date) -> Select[Any]:
    """The query of :func:`rejected_events` (it reads the rejected rows' own index)."""
    t = audit_trail.c
    return (
        select(t.unit, t.day, t.code, func.count())
        .where(
            t.kind == "event",
            REJECTED,
            t.day >= first,
            t.day <= last,
            t.unit.startswith(under),
            func.length(t.unit) == 12,
        )
        .group_by(t.unit, t.day, t.code)
        .order_by(t.unit, t.day, t.code)
    )
