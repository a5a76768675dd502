"""From a community system to the place rollups: events reported to a real intake with
labels in everyday forms ("枫林湾小区" "3栋", "枫林湾" "三号楼") or a place id are matched
there to building 640106001001-C001-B003, and the aggregator consuming the real stream
counts them at that building, its compound and its grid, clusters the two confirmed
persons at one place, and counts the label nobody registered as unregistered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aggregator.harness import consume
from tests.aggregator.places_support import COMMUNITY, FENGLIN, write_places
from tests.support.clock import SHANGHAI, earlier_today
from tests.support.events import case, screening
from tests.support.intake import RunningIntake
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.place_reader import PlaceReader
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine
from zhibao_shared.places import PlaceKind

pytestmark = pytest.mark.integration

BUILDING = f"{FENGLIN}-B003"
GRID = f"{COMMUNITY}-G002"


@pytest.fixture
def intake_overrides(tmp_path: Path) -> dict[str, Any]:
    """Intake matching labels against the test places (the aggregator reads the same)."""
    return {"places_path": write_places(tmp_path)}


def confirmed(ref: str, when: datetime, **place: str) -> dict[str, Any]:
    """A person reported confirmed at ``when``, at ``place`` (labels or ``place``)."""
    event = case(COMMUNITY, person={"ref": ref}, classification="confirmed")
    event["time"] = when.isoformat()
    event["data"] |= place
    return event


async def test_labels_matched_by_intake_count_at_the_registered_places(
    intake: RunningIntake, tmp_path: Path
) -> None:
    when = earlier_today(timedelta(minutes=1))  # all on the local day read below
    day = when.astimezone(SHANGHAI).date()
    events = [
        screening(COMMUNITY, temperature=38.2, compound="枫林湾小区", building="3栋", when=when),
        screening(COMMUNITY, compound=" 枫林湾 ", building="三号楼", when=when),
        screening(COMMUNITY, compound="老旧小区", building="9栋", when=when),
        confirmed("r-1", when, compound="枫林湾", building="3栋"),
        confirmed("r-2", when, place=BUILDING),
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{intake.url}/v1/events",
            content=json.dumps(events).encode(),
            headers={
                "authorization": f"Bearer {intake.token(COMMUNITY)}",
                "content-type": "application/cloudevents+json",
            },
        )
    assert answer.status_code == 202, answer.text
    settings = AggregatorSettings(
        data_dir=tmp_path / "aggregator",
        nats_url=intake.nats.url,
        places_path=intake.settings.places_path,
        _env_file=None,
    )
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    try:
        await consume(intake.nats.url, engine, settings)
        read = reader(settings, engine)
        places = PlaceReader(read)
        found = {
            kind: await places.places(COMMUNITY, kind, day)
            for kind in (PlaceKind.BUILDING, PlaceKind.COMPOUND, PlaceKind.GRID)
        }
        rollup = await read.figures(COMMUNITY, day)
    finally:
        await engine.dispose()
    figures = {
        place["id"]: place["figures"] for answer in found.values() for place in answer["places"]
    }
    for place in (BUILDING, FENGLIN, GRID):
        got = figures[place]
        assert (got["screenings"], got["fevers"]) == (2, 1), place
        assert (got["new_confirmed"], got["current_confirmed"]) == (2, 2), place
    assert figures[f"{FENGLIN}-B001"]["events"] == 0
    assert found[PlaceKind.COMPOUND]["unregistered"] == 1, "老旧小区 9栋"
    assert rollup["clusters_in_risk_window"] == 1, "two confirmed at one registered place"
