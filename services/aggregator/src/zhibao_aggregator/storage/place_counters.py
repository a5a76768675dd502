"""Writing and reading the counters per registered place (``place_counters``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import place_figures as pf
from zhibao_aggregator.storage.facts import CHUNK, as_utc
from zhibao_aggregator.storage.place_tables import place_counters
from zhibao_shared.bulk import Insert, adding, insert_many
from zhibao_shared.events import Classification

_t = place_counters.c
#: A place counter row to add: (place, metric, day as bound, value).
Row = tuple[str, str, Any, int]


def case_places(row: RowMapping | dict[str, Any]) -> pf.CasePlaces:
    """A case_facts row as a report with its registered places."""
    return pf.CasePlaces(
        as_utc(row["time"]),
        row["dedup_key"],
        Classification(row["classification"]),
        row["compound_id"],
        row["building_id"],
        row["grid_id"],
    )


def place_rows(change: Counter[tuple[str, date, str]], bind: Callable[[date], Any]) -> list[Row]:
    """The place changes (``place_figures.split``) as rows to add, in primary-key order
    (as ``writer.counter_rows`` and for its reasons)."""
    return sorted(
        (place, metric, bind(day), value) for (place, day, metric), value in change.items()
    )


async def add_place_counters(conn: AsyncConnection, rows: list[Row]) -> None:
    """Add rows of :func:`place_rows` to the place counters, in the caller's transaction."""
    if rows:
        await insert_many(conn, _ADD, rows)


_ADD = Insert(place_counters.name, ("place", "metric", "day", "value"), adding(place_counters))


async def place_values(
    conn: AsyncConnection, places: Sequence[str], day: date
) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Per place: its flows on ``day`` and its running sums (stocks, cumulative flows)
    up to ``day``, from indexed reads of its counter rows."""
    flows: dict[str, dict[str, int]] = defaultdict(dict)
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for start in range(0, len(places), CHUNK):
        chunk = list(places[start : start + CHUNK])
        today = select(_t.place, _t.metric, _t.value).where(_t.place.in_(chunk), _t.day == day)
        for place, metric, value in (await conn.execute(today)).all():
            flows[place][metric] = int(value)
        summed = (
            select(_t.place, _t.metric, func.sum(_t.value))
            .where(_t.place.in_(chunk), _t.metric.in_(pf.SUMMED), _t.day <= day)
            .group_by(_t.place, _t.metric)
        )
        for place, metric, value in (await conn.execute(summed)).all():
            sums[place][metric] = int(value or 0)
    return {place: (flows.get(place, {}), sums.get(place, {})) for place in places}
