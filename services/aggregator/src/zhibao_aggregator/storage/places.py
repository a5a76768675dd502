"""Where cases were reported: clusters for the risk rule (indexed reads of case facts)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import String, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.storage.tables import case_facts
from zhibao_shared.events import Classification

_c = case_facts.c
#: A case's place: the registered compound intake matched it to (a matched building
#: implies its compound), else its compound label, else its building label.
PLACE = case(
    (_c.compound_id.is_not(None), literal("registered:") + cast(_c.compound_id, String)),
    (_c.compound.is_not(None), literal("compound:") + cast(_c.compound, String)),
    else_=literal("building:") + cast(_c.building, String),
)


async def cluster_communities(
    conn: AsyncConnection, start: datetime, end: datetime, min_cases: int
) -> list[str]:
    """The community of each place where at least ``min_cases`` persons were reported
    confirmed between ``start`` (included) and ``end`` (excluded): one entry per cluster."""
    query = (
        select(_c.community)
        .where(
            _c.classification == Classification.CONFIRMED.value,
            _c.time >= start.astimezone(UTC),  # stored in UTC (SQLite drops the offset)
            _c.time < end.astimezone(UTC),
            (_c.compound_id.is_not(None)) | (_c.compound.is_not(None)) | (_c.building.is_not(None)),
        )
        .group_by(_c.community, PLACE)
        .having(func.count(func.distinct(_c.pid)) >= min_cases)
    )
    return list((await conn.execute(query)).scalars())


def clusters_in(unit: str, communities: list[str]) -> int:
    """How many of the clusters lie in ``unit``."""
    return sum(1 for community in communities if community.startswith(unit))
