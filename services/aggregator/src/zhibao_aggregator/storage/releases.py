"""Stored public releases: read one, the latest, or store a new one (first writer wins)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.storage.tables import counters, public_releases


async def stored(engine: AsyncEngine, day: date) -> dict[str, Any] | None:
    """The stored release of ``day``, if made."""
    async with engine.connect() as conn:
        body = await conn.scalar(select(public_releases.c.body).where(public_releases.c.day == day))
    return json.loads(body) if body is not None else None


async def span(engine: AsyncEngine) -> tuple[date | None, date | None]:
    """The first and last day with a stored release."""
    async with engine.connect() as conn:
        c = public_releases.c
        row = (await conn.execute(select(func.min(c.day), func.max(c.day)))).one()
    return row[0], row[1]


async def first_counted_day(engine: AsyncEngine) -> date | None:
    """The earliest day any counter holds a value for."""
    async with engine.connect() as conn:
        found: date | None = await conn.scalar(select(func.min(counters.c.day)))
    return found


async def store(engine: AsyncEngine, day: date, body: dict[str, Any]) -> dict[str, Any]:
    """Store a release unless another writer made that day's first; return the stored one."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(public_releases).values(
                    day=day, made_at=datetime.now(UTC), body=json.dumps(body, sort_keys=True)
                )
            )
    except IntegrityError:
        pass
    kept = await stored(engine, day)
    assert kept is not None, "a release stored or found"
    return kept
