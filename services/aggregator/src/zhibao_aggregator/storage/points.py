"""Epidemic points: stored from the response service's messages; their cases read back."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Select, String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain.points import PlacedCase, Point
from zhibao_aggregator.storage.tables import case_facts, epidemic_points
from zhibao_aggregator.storage.writer import as_utc
from zhibao_shared.db import conflict_insert
from zhibao_shared.events import Classification
from zhibao_shared.response_events import PointMessage

#: Classifications that make a person a case of a point (an infection).
INFECTIONS = (Classification.CONFIRMED.value, Classification.ASYMPTOMATIC.value)
_CHUNK = 500


async def store_points(conn: AsyncConnection, messages: list[PointMessage]) -> None:
    """Store points; a lifting is kept once known (whatever the order of the messages)."""
    if not messages:
        return
    rows: dict[str, dict[str, object]] = {}
    for m in messages:
        row: dict[str, object] = {
            "point": m.point,
            "unit": m.unit,
            "compound": m.compound,
            "building": m.building,
            "start": m.start.astimezone(UTC),
            "declared_at": m.declared_at.astimezone(UTC),
            "declared_by": m.declared_by,
            "lifted_at": m.lifted_at.astimezone(UTC) if m.lifted_at else None,
            "lifted_by": m.lifted_by,
        }
        if row["lifted_at"] is None and m.point in rows:
            continue  # a lifting seen earlier in the batch stays
        rows[m.point] = row
    statement = conflict_insert(conn, epidemic_points)
    t = epidemic_points.c
    upsert = statement.on_conflict_do_update(
        index_elements=[t.point],
        set_={
            "lifted_at": func.coalesce(t.lifted_at, statement.excluded.lifted_at),
            "lifted_by": func.coalesce(t.lifted_by, statement.excluded.lifted_by),
        },
    )
    await conn.execute(upsert, [rows[k] for k in sorted(rows)])


def _all_points_statement() -> Select[Any]:
    t = epidemic_points.c
    prefix = bindparam("prefix", type_=String)
    return select(epidemic_points).where(t.unit.startswith(prefix)).order_by(t.start, t.point)


#: Built once (a read binds the prefix): building the expression cost more than the lookup.
_ALL_POINTS = _all_points_statement()


async def all_points(conn: AsyncConnection, prefix: str = "") -> list[Point]:
    """Every point in units starting with ``prefix``."""
    return [
        Point(
            r["point"],
            r["unit"],
            r["compound"],
            r["building"],
            as_utc(r["start"]),
            as_utc(r["declared_at"]),
            r["declared_by"],
            as_utc(r["lifted_at"]) if r["lifted_at"] is not None else None,
            r["lifted_by"],
        )
        for r in (await conn.execute(_ALL_POINTS, {"prefix": prefix})).mappings()
    ]


async def placed_cases(conn: AsyncConnection, communities: list[str]) -> list[PlacedCase]:
    """Infections reported with a compound or building (labels or registered) in these
    communities."""
    c = case_facts.c
    out: list[PlacedCase] = []
    for start in range(0, len(communities), _CHUNK):
        query = select(
            c.community, c.compound, c.building, c.pid, c.time, c.compound_id, c.building_id
        ).where(
            c.community.in_(communities[start : start + _CHUNK]),
            c.classification.in_(INFECTIONS),
            (c.compound.is_not(None)) | (c.building.is_not(None)) | (c.compound_id.is_not(None)),
        )
        for community, compound, building, pid, time, compound_id, building_id in (
            await conn.execute(query)
        ).all():
            moment = as_utc(time)
            out.append(
                PlacedCase(community, compound, building, pid, moment, compound_id, building_id)
            )
    return out
