"""Declared response levels: stored from the response service's messages, read per unit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.storage.tables import level_declarations
from zhibao_shared.db import conflict_insert
from zhibao_shared.response_events import LevelMessage

_CHUNK = 500


async def store_levels(conn: AsyncConnection, messages: list[LevelMessage]) -> None:
    """Store declarations not stored yet (a redelivered one changes nothing)."""
    if not messages:
        return
    rows = {
        m.declaration: {
            "declaration": m.declaration,
            "unit": m.unit,
            "number": m.number,
            "level": m.level,
            "declared_at": m.declared_at.astimezone(UTC),
            "declared_by": m.declared_by,
        }
        for m in messages
    }
    statement = conflict_insert(conn, level_declarations).on_conflict_do_nothing(
        index_elements=[level_declarations.c.declaration]
    )
    await conn.execute(statement, sorted(rows.values(), key=lambda r: str(r["declaration"])))


def _levels_statement() -> Select[Any]:
    t = level_declarations.c
    return select(t.unit, t.number, t.level).where(
        t.unit.in_(bindparam("units", expanding=True)),
        t.declared_at < bindparam("before", type_=t.declared_at.type),
    )


#: Built once (a read binds the units and the moment).
_LEVELS = _levels_statement()


async def declared_levels(
    conn: AsyncConnection, units: list[str], before: datetime
) -> dict[str, str | None]:
    """Each unit's level in force at ``before`` (the declaration with the highest number
    made before it); units without one are absent."""
    found: dict[str, tuple[int, str | None]] = {}
    for start in range(0, len(units), _CHUNK):
        params = {"units": units[start : start + _CHUNK], "before": before.astimezone(UTC)}
        for unit, number, level in (await conn.execute(_LEVELS, params)).all():
            if unit not in found or number > found[unit][0]:
                found[unit] = (int(number), level)
    return {unit: level for unit, (_n, level) in found.items()}
