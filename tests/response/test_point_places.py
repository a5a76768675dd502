"""An epidemic point may name a registered compound or building by its id: a building's
compound is filled in, and an id that is not a registered place of the point's community
(or a building outside the named compound) is refused with 422 ``unknown_place``.
Labels stay accepted as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.aggregator.places_support import FENGLIN, JUAN, WEILAI, write_places
from tests.response.conftest import Harness, start
from tests.support.events import COMMUNITY_A
from zhibao_shared.db import sqlite_url
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[Harness]:
    database = sqlite_url(tmp_path, "response")
    places = write_places(tmp_path)
    async for harness in start(tmp_path, nats_server.url, database, places_path=places):
        yield harness


async def declare(service: Harness, **body: Any) -> Any:
    return await service.client.post(
        "/v1/points",
        json={"unit": COMMUNITY_A, "reason": "确诊病例住所", **body},
        headers=service.auth("district"),
    )


async def test_points_name_registered_places_by_id(service: Harness) -> None:
    compound = await declare(service, compound=FENGLIN)
    assert compound.status_code == 201, compound.text
    assert (compound.json()["compound"], compound.json()["building"]) == (FENGLIN, None)
    building = await declare(service, building=f"{FENGLIN}-B003")
    assert building.status_code == 201, building.text
    assert (building.json()["compound"], building.json()["building"]) == (
        FENGLIN,
        f"{FENGLIN}-B003",
    ), "a building's compound is filled in"
    labels = await declare(service, compound="枫林湾", building="3栋")
    assert labels.status_code == 201
    assert (labels.json()["compound"], labels.json()["building"]) == ("枫林湾", "3栋")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"compound": f"{COMMUNITY_A}-C009"}, "compound"),
        ({"compound": JUAN}, "compound"),
        ({"compound": f"{FENGLIN}-B001"}, "compound"),
        ({"building": f"{JUAN}-B001"}, "building"),
        ({"compound": WEILAI, "building": f"{FENGLIN}-B001"}, "building"),
    ],
)
async def test_unknown_places_are_refused(
    service: Harness, body: dict[str, str], field: str
) -> None:
    answer = await declare(service, **body)
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["type"] == "unknown_place"
    assert problem["loc"] == ["body", field]


async def test_level_declarations_name_registered_compounds_by_id(service: Harness) -> None:
    body = {"unit": COMMUNITY_A, "level": "orange", "reason": "聚集性疫情"}
    named = await service.client.post(
        "/v1/levels",
        json=body | {"compounds": [FENGLIN, "枫林湾二期"]},
        headers=service.auth("district"),
    )
    assert named.status_code == 201, named.text
    assert named.json()["compounds"] == [FENGLIN, "枫林湾二期"]
    for wrong in (f"{COMMUNITY_A}-C009", JUAN, f"{FENGLIN}-B001"):
        answer = await service.client.post(
            "/v1/levels", json=body | {"compounds": [wrong]}, headers=service.auth("district")
        )
        assert answer.status_code == 422, answer.text
        [problem] = answer.json()["detail"]
        assert (problem["type"], problem["loc"]) == ("unknown_place", ["body", "compounds"])
