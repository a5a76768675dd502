"""Rollups per registered compound, grid and building of a community, and each
community's unregistered count, are exact: a seeded stream of screenings and case
histories at places, a sixth of them corrected (retracted, or replaced by an event
elsewhere), every event published twice and the first batches losing their acks after
the commit, gives at every place and day exactly the naive truth of what the
corrections leave; a rebuild from the stream gives the same. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.aggregator.harness import FlakyAfterCommit, consume, publish_each
from tests.aggregator.places_support import (
    COMMUNITY,
    OTHER,
    PlaceScenario,
    generate,
    truth,
    write_places,
)
from zhibao_aggregator.bootstrap import reader, rebuild
from zhibao_aggregator.http_api import add_error_handlers
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.place_reader import PlaceReader
from zhibao_aggregator.places_api import build_places_router
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

Read = dict[tuple[str, date], dict[str, int]]


async def read_places(settings: AggregatorSettings, days: list[date]) -> tuple[Read, Read]:
    """Every place's non-zero figures and each community's unregistered count per day,
    as ``GET /v1/units/{community}/places`` answers them."""
    engine = make_engine(settings.database_url())
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=["640106001"], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(
        build_places_router(PlaceReader(reader(settings, engine)), TokenAuth(tokens))
    )
    figures: Read = {}
    unregistered: Read = {}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://aggregator",
            headers={"authorization": f"Bearer {secret}"},
        ) as http:
            for community in (COMMUNITY, OTHER):
                for day in days:
                    for kind in ("compound", "grid", "building"):
                        answer = await http.get(
                            f"/v1/units/{community}/places",
                            params={"kind": kind, "date": day.isoformat()},
                        )
                        assert answer.status_code == 200, answer.text
                        body: dict[str, Any] = answer.json()
                        unregistered[(community, day)] = {"unregistered": body["unregistered"]}
                        for place in body["places"]:
                            found = {k: v for k, v in place["figures"].items() if v}
                            if found:
                                figures[(place["id"], day)] = found
    finally:
        await engine.dispose()
    return figures, unregistered


def expected(scenario: PlaceScenario) -> tuple[Read, Read]:
    """The truth in the shape :func:`read_places` gives."""
    by_place, unregistered = truth(scenario.expected, scenario.days)
    figures = {key: {k: v for k, v in found.items() if v} for key, found in by_place.items()}
    counts = {
        (community, day): {"unregistered": unregistered.get((community, day), 0)}
        for community in (COMMUNITY, OTHER)
        for day in scenario.days
    }
    return {k: v for k, v in figures.items() if v}, counts


def _differences(actual: Read, wanted: Read) -> list[tuple[str, date, str, int, int]]:
    """(place, day, metric, actual, expected) wherever the two differ."""
    out = []
    for place, day in sorted(set(actual) | set(wanted)):
        mine, theirs = actual.get((place, day), {}), wanted.get((place, day), {})
        for metric in sorted(set(mine) | set(theirs)):
            if mine.get(metric, 0) != theirs.get(metric, 0):
                out.append((place, day, metric, mine.get(metric, 0), theirs.get(metric, 0)))
    return out


async def _exact_and_rebuilt(url: str, settings: AggregatorSettings, rebuilt_url: str) -> None:
    scenario = generate(seed=17)
    await publish_each(url, scenario.publish, settings)
    await publish_each(url, scenario.publish, settings, again=" again")
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    try:
        consumer = await consume(
            url, engine, settings, wrap=lambda h: FlakyAfterCommit(h, times=2), batch_size=40
        )
        assert consumer.stats.failures == 2
    finally:
        await engine.dispose()
    live = await read_places(settings, scenario.days)
    want = expected(scenario)
    assert live[1] == want[1], "unregistered per community and day"
    assert _differences(live[0], want[0]) == [], "figures per place and day"
    assert any("current_confirmed" in found for found in live[0].values())
    rebuilt = settings.model_copy(update={"aggregator_database_url": rebuilt_url})
    assert await rebuild(rebuilt) == 2 * len(scenario.publish)
    assert await read_places(rebuilt, scenario.days) == live


async def test_place_rollups_are_exact_and_rebuild_equals_live_on_sqlite(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        places_path=write_places(tmp_path),
        _env_file=None,
    )
    await _exact_and_rebuilt(nats_server.url, settings, sqlite_url(tmp_path, "rebuilt"))


async def test_place_rollups_are_exact_and_rebuild_equals_live_on_postgresql(
    nats_server: NatsServer, tmp_path: Path, postgres_url: str
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        places_path=write_places(tmp_path),
        aggregator_database_url=postgres_url,
        _env_file=None,
    )
    await _exact_and_rebuilt(nats_server.url, settings, sqlite_url(tmp_path, "rebuilt"))
