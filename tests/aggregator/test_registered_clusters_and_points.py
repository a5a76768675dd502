"""Clusters and epidemic points key on registered places, and on labels where there are none.

Two confirmed persons reported as "枫林湾" "3栋" and "枫林湾小区" "3号楼", both matched by
intake to building 640106001001-C001-B003, are one place: a cluster (the national rule's
two cases), and cases of a point declared for compound 640106001001-C001, or by labels
the registry matches. Unregistered places still cluster and fall in points by their
labels. SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.places_support import COMMUNITY, FENGLIN, OTHER, write_places
from tests.support.clock import earlier_today
from zhibao_aggregator.bootstrap import reader, rules
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.points import store_points
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import PublishedCase
from zhibao_shared.response_events import PointMessage

ZONE = ZoneInfo("Asia/Shanghai")
MATCHED = {"compound_id": FENGLIN, "building_id": f"{FENGLIN}-B003", "grid_id": f"{COMMUNITY}-G002"}
_ids = itertools.count(1)


def confirmed(community: str, **place: str) -> PublishedCase:
    """A new person reported confirmed a minute ago (but today), at ``place`` (labels and ids)."""
    n = next(_ids)
    when = earlier_today(timedelta(minutes=1))
    return PublishedCase.model_validate(
        {
            "specversion": "1.0",
            "id": f"case-{n}",
            "source": f"/{community}/his",
            "subject": community,
            "type": "zhibao.case.v1",
            "time": when,
            "reporter": "tok",
            "receivedat": when,
            "data": {"person": {"pid": f"{n:032x}"}, "classification": "confirmed", **place},
        }
    )


def point(n: int, community: str, compound: str | None, building: str | None) -> PointMessage:
    """A point declared an hour ago."""
    declared = datetime.now(UTC) - timedelta(hours=1)
    return PointMessage(
        event="point_declared",
        point=f"{n:032x}",
        unit=community,
        compound=compound,
        building=building,
        start=declared,
        declared_at=declared,
        declared_by="市指挥部",
    )


async def _apply(engine: AsyncEngine, settings: AggregatorSettings, events: list[Any]) -> None:
    async with engine.begin() as conn:
        await apply_batch(conn, [Delivery(e, "s", 1, 1) for e in events], rules(settings))


async def test_registered_places_cluster_and_fall_in_points(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", places_path=write_places(tmp_path), _env_file=None
    )
    reported = [
        confirmed(COMMUNITY, compound="枫林湾", building="3栋", **MATCHED),
        confirmed(COMMUNITY, compound="枫林湾小区", building="3号楼", **MATCHED),
        confirmed(OTHER, compound="老旧小区", building="9栋"),
        confirmed(OTHER, compound="老旧小区", building="9栋"),
    ]
    today = reported[-1].time.astimezone(ZONE).date()  # the day read: the cases' own
    await _apply(engine, settings, reported)
    async with engine.begin() as conn:
        await store_points(
            conn,
            [
                point(1, COMMUNITY, FENGLIN, None),
                point(2, COMMUNITY, "枫林湾", "3栋"),
                point(3, COMMUNITY, None, f"{FENGLIN}-B001"),
                point(4, COMMUNITY, "枫林湾小区", None),
                point(5, OTHER, "老旧小区", "9栋"),
                point(6, COMMUNITY, "枫林湾", "9栋"),
            ],
        )
    read = reader(settings, engine)
    community = await read.figures(COMMUNITY, today)
    other = await read.figures(OTHER, today)
    assert community["clusters_in_risk_window"] == 1, "3栋 and 3号楼 of 枫林湾 are one place"
    assert other["clusters_in_risk_window"] == 1, "unregistered labels still cluster"
    cases = {
        str(p["point"])[-1]: p["cases_after_declaration"]
        for code in (COMMUNITY, OTHER)
        for p in await read.points(code, today)
    }
    assert cases == {"1": 2, "2": 2, "3": 0, "4": 2, "5": 2, "6": 0}
    registered = {
        str(p["point"])[-1]: (p["compound_id"], p["building_id"])
        for p in await read.points(COMMUNITY, today)
    }
    assert registered["2"] == (FENGLIN, f"{FENGLIN}-B003"), "labels matched to the registry"
    assert registered["6"] == (None, None), "a building the registry does not know"
    assert community["point_cases_after_declaration"] == 2 + 2 + 0 + 2 + 0
