"""Who sees a community's places, and the grid workers' workload per community and street.

The places route answers tokens covering the community only (403 otherwise), names bad
requests (a street, a bad kind) with a 422 and unknown units with a 404, and has no
public counterpart. The rollup and children answers carry each unit's grid workload
from the places registry: workers, households, households per worker and grids above
seed 004's 300–500 households per worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.places_support import COMMUNITY, FENGLIN, OTHER, STREET, write_places
from zhibao_aggregator.bootstrap import public_summaries, reader
from zhibao_aggregator.http_api import add_error_handlers, build_public_router, build_router
from zhibao_aggregator.place_reader import PlaceReader
from zhibao_aggregator.places_api import build_places_router
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, TokenStore


@pytest.fixture
def settings(tmp_path: Path) -> AggregatorSettings:
    """Settings with the test places registry."""
    return AggregatorSettings(
        data_dir=tmp_path / "data", places_path=write_places(tmp_path), _env_file=None
    )


def client(settings: AggregatorSettings, engine: AsyncEngine, scope: str) -> httpx.AsyncClient:
    """The aggregator's unit, places and public routes for a read token on ``scope``."""
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=[scope], role=Role.READ)[1]
    read_side = reader(settings, engine)
    app = FastAPI()
    add_error_handlers(app)
    auth = TokenAuth(tokens)
    app.include_router(build_router(read_side, auth))
    app.include_router(build_places_router(PlaceReader(read_side), auth))
    app.include_router(build_public_router(public_summaries(settings, read_side)))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://aggregator",
        headers={"authorization": f"Bearer {secret}"},
    )


async def test_places_answer_the_community_s_tokens_only(
    settings: AggregatorSettings, sqlite_engine: AsyncEngine
) -> None:
    async with client(settings, sqlite_engine, COMMUNITY) as own:
        answer = await own.get(f"/v1/units/{COMMUNITY}/places")
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        assert body["kind"] == "compound"
        assert [p["id"] for p in body["places"]] == [FENGLIN, f"{COMMUNITY}-C002"]
        assert body["places"][0]["name"] == "枫林湾"
        assert body["places"][0]["figures"]["screenings"] == 0
        grids = (await own.get(f"/v1/units/{COMMUNITY}/places?kind=grid")).json()["places"]
        assert [(g["name"], g["worker"], g["households"]) for g in grids] == [
            ("第1网格", "网格员 王芳", 450),
            ("第2网格", "网格员 李强", 620),
        ]
        buildings = await own.get(f"/v1/units/{COMMUNITY}/places?kind=building")
        assert [b["compound"] for b in buildings.json()["places"]] == [FENGLIN] * 3 + [
            f"{COMMUNITY}-C002"
        ]
        other = await own.get(f"/v1/units/{OTHER}/places")
        assert other.status_code == 403
        assert OTHER in other.json()["detail"]
        bad_kind = await own.get(f"/v1/units/{COMMUNITY}/places?kind=floor")
        assert bad_kind.status_code == 422
        assert (await own.get(f"/v1/public/units/{COMMUNITY}/places")).status_code == 404
    async with client(settings, sqlite_engine, STREET) as street:
        assert (await street.get(f"/v1/units/{OTHER}/places")).status_code == 200
        not_community = await street.get(f"/v1/units/{STREET}/places")
        assert not_community.status_code == 422
        assert "not a community" in not_community.text
        unknown = await street.get(f"/v1/units/{STREET}999/places")
        assert unknown.status_code == 404
        del street.headers["authorization"]
        assert (await street.get(f"/v1/units/{COMMUNITY}/places")).status_code == 401


async def test_grid_workload_per_community_and_street(
    settings: AggregatorSettings, sqlite_engine: AsyncEngine
) -> None:
    async with client(settings, sqlite_engine, STREET) as http:
        community = (await http.get(f"/v1/units/{COMMUNITY}/rollup")).json()["grid_workload"]
        street = (await http.get(f"/v1/units/{STREET}/rollup")).json()["grid_workload"]
        children = (await http.get(f"/v1/units/{STREET}/children")).json()["children"]
        places = (await http.get(f"/v1/units/{OTHER}/places?kind=grid")).json()
    assert community == {
        "grids": 2,
        "workers": 2,
        "households": 1070,
        "households_per_worker": 535.0,
        "grids_over_standard": 1,
        "standard": [300, 500],
        "workers_needed": [3, 4],
    }
    # 王芳 and 李强 in one community; the other's two grids each have a worker named 赵敏.
    assert street["workers"] == 4
    assert street["households"] == 1650
    assert street["households_per_worker"] == 412.5
    assert street["grids_over_standard"] == 1
    assert street["workers_needed"] == [4, 6]
    by_code = {child["code"]: child["grid_workload"] for child in children}
    assert by_code[COMMUNITY] == community
    assert by_code[OTHER]["households_per_worker"] == 290.0
    assert by_code[OTHER]["grids_over_standard"] == 0
    assert places["grid_workload"] == by_code[OTHER]
    without = [code for code, found in by_code.items() if found is None]
    assert without, "communities without registered grids have no workload figure"
