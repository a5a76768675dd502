"""Declared levels and epidemic points travel from the response service to the aggregator:
its rollups flag levels to raise or lower, follow each point's planned lifting as cases
arrive, count points overdue for lifting, and a rebuild gives the same figures."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.harness import consume
from tests.response.conftest import Harness, start
from tests.support.clock import earlier_today
from zhibao_aggregator.bootstrap import levels_feed, reader, rebuild
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.events import PublishedCase, published_payload
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
COMMUNITY, STREET, DISTRICT = "640106001001", "640106001", "640106"
LINEAGE = ("6401", DISTRICT, STREET, COMMUNITY)
ROLLUP_KEYS = (
    "risk_level",
    "declared_level",
    "level_suggestion",
    "points_active",
    "points_overdue_for_lifting",
    "point_cases_after_declaration",
)
_ids = itertools.count(1)


class Aggregator:
    """The aggregator's side: its database, its level/point consumer, its read API."""

    def __init__(self, settings: AggregatorSettings, engine: AsyncEngine, url: str) -> None:
        self.settings, self.engine, self.url = settings, engine, url
        tokens = TokenStore.in_data_dir(settings.data_dir)
        secret = tokens.create(scopes=["6401"], role=Role.READ)[1]
        app = FastAPI()
        add_error_handlers(app)
        app.include_router(build_router(reader(settings, engine), TokenAuth(tokens)))
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://aggregator",
            headers={"authorization": f"Bearer {secret}"},
        )

    async def sync(self) -> None:
        """Store every level and point message the stream holds, and every event."""
        client = await nats.connect(self.url)
        try:
            await ensure_stream(client.jetstream(), events_stream_config(self.settings))
            feed = levels_feed(self.settings, client.jetstream(), self.engine)
            await feed.start()
            await feed.run_until_caught_up()
        finally:
            await client.close()
        await consume(self.url, self.engine, self.settings)

    async def rollup(self, code: str = COMMUNITY) -> dict[str, Any]:
        answer = await self.http.get(f"/v1/units/{code}/rollup")
        assert answer.status_code == 200, answer.text
        figures: dict[str, Any] = answer.json()["figures"]
        return {key: figures[key] for key in ROLLUP_KEYS}

    async def points(self, code: str = COMMUNITY) -> list[dict[str, Any]]:
        answer = await self.http.get(f"/v1/units/{code}/points")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["points"]
        return found


@pytest.fixture
async def response(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[Harness]:
    """The response service (in-process, its clock an hour behind: what it declares came
    before the cases the test reports "now")."""
    async for harness in start(tmp_path, nats_server.url, sqlite_url(tmp_path, "response")):
        harness.clock.advance(hours=-1)
        yield harness


@pytest.fixture(params=["sqlite", "postgres"])
def aggregator_database(request: pytest.FixtureRequest) -> str | None:
    """The aggregator's database: SQLite in its data dir, or a fresh PostgreSQL one."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@asynccontextmanager
async def running(
    tmp_path: Path, url: str, database: str | None, districts: tuple[str, ...] = ()
) -> AsyncIterator[Aggregator]:
    """An aggregator's side on ``database`` (of ``districts`` only, when given)."""
    settings = AggregatorSettings(
        data_dir=tmp_path / "aggregator",
        nats_url=url,
        aggregator_database_url=database,
        aggregator_districts=list(districts),
        _env_file=None,
    )
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    side = Aggregator(settings, engine, url)
    try:
        yield side
    finally:
        await side.http.aclose()
        await engine.dispose()


@pytest.fixture
async def aggregator(
    tmp_path: Path, nats_server: NatsServer, aggregator_database: str | None
) -> AsyncIterator[Aggregator]:
    async with running(tmp_path, nats_server.url, aggregator_database) as side:
        yield side


async def report_cases(url: str, settings: AggregatorSettings, *places: dict[str, str]) -> date:
    """One new person confirmed a minute ago (never before today's local midnight) per
    place given, through the events stream; the local day of the cases."""
    when = earlier_today(timedelta(minutes=1))
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for place in places:
            n = next(_ids)
            event = PublishedCase.model_validate(
                {
                    "specversion": "1.0",
                    "id": f"case-{n}",
                    "source": f"/{COMMUNITY}/his",
                    "subject": COMMUNITY,
                    "type": "zhibao.case.v1",
                    "time": when,
                    "reporter": "tok",
                    "receivedat": when,
                    "data": {
                        "person": {"pid": f"{n:032x}"},
                        "classification": "confirmed",
                        **place,
                    },
                }
            )
            await js.publish(
                event_subject(COMMUNITY, "case"), published_payload(event), stream=EVENTS_STREAM
            )
    finally:
        await client.close()
    return when.astimezone(ZONE).date()


async def declare_level(
    response: Harness, level: str, unit: str = COMMUNITY, who: str = "district"
) -> None:
    sent = len(response.tap.bodies("level"))
    answer = await response.client.post(
        "/v1/levels",
        json={"unit": unit, "level": level, "reason": "研判"},
        headers=response.auth(who),
    )
    assert answer.status_code == 201, answer.text
    await response.tap.wait_for(
        "the level message", lambda: len(response.tap.bodies("level")) > sent
    )


async def declare_point(response: Harness, **body: Any) -> dict[str, Any]:
    sent = len(response.tap.bodies("point"))
    answer = await response.client.post(
        "/v1/points",
        json={"unit": COMMUNITY, "reason": "确诊病例住所", **body},
        headers=response.auth("district"),
    )
    assert answer.status_code == 201, answer.text
    await response.tap.wait_for(
        "the point message", lambda: len(response.tap.bodies("point")) > sent
    )
    declared: dict[str, Any] = answer.json()
    return declared


async def test_declared_levels_reach_the_rollup_with_raise_and_lower_suggestions(
    response: Harness, aggregator: Aggregator
) -> None:
    await declare_level(response, "yellow")
    message = response.tap.bodies("level")[-1]
    assert set(message) == {
        "event",
        "declaration",
        "unit",
        "level",
        "number",
        "declared_at",
        "declared_by",
    }, "units, times and the token's name: nobody's personal data"
    assert (message["unit"], message["level"], message["number"]) == (COMMUNITY, "yellow", 1)
    await aggregator.sync()
    rollup = await aggregator.rollup()
    assert (rollup["risk_level"], rollup["declared_level"]) == ("low", "yellow")
    assert rollup["level_suggestion"] == "lower", "no case for 14 days while yellow is declared"

    await report_cases(aggregator.url, aggregator.settings, {})
    await aggregator.sync()
    rollup = await aggregator.rollup()
    assert (rollup["risk_level"], rollup["level_suggestion"]) == ("medium", None), "yellow fits"

    await declare_level(response, "blue")
    await aggregator.sync()
    rollup = await aggregator.rollup()
    assert (rollup["declared_level"], rollup["level_suggestion"]) == ("blue", "raise")
    street = await aggregator.rollup(STREET)
    assert (street["declared_level"], street["level_suggestion"]) == (None, "raise")

    await declare_level(response, "none")
    assert response.tap.bodies("level")[-1]["level"] is None, "lifted"
    await aggregator.sync()
    rollup = await aggregator.rollup()
    assert (rollup["declared_level"], rollup["level_suggestion"]) == (None, "raise")


async def test_a_level_declared_for_the_city_is_in_its_rollup_as_a_districts_is_in_its(
    response: Harness, tmp_path: Path, nats_server: NatsServer, aggregator_database: str | None
) -> None:
    """Whole-city measures reach the rollups, also of a partition reading one district's
    messages: the city's level is the city's ``declared_level``, as the district's is the
    district's; the communities below show their own (none), under either."""
    await declare_level(response, "red", "6401", "city")
    await declare_level(response, "blue", DISTRICT, "district")
    assert [m["unit"] for m in response.tap.bodies("level")] == ["6401", DISTRICT]
    async with running(tmp_path, nats_server.url, aggregator_database, (DISTRICT,)) as side:
        await side.sync()
        rollups = {code: await side.rollup(code) for code in LINEAGE}
    declared = {code: rollup["declared_level"] for code, rollup in rollups.items()}
    assert declared == {"6401": "red", DISTRICT: "blue", STREET: None, COMMUNITY: None}
    assert rollups["6401"]["level_suggestion"] == "lower", "red without a case in 14 days"


async def test_points_planned_lifting_moves_with_a_case_and_overdue_points_are_counted(
    response: Harness, aggregator: Aggregator, tmp_path: Path
) -> None:
    now = response.clock()
    refused = await response.client.post(
        "/v1/points",
        json={"unit": COMMUNITY, "compound": "枫林湾一期", "reason": "x"},
        headers=response.auth("community_a"),
    )
    assert refused.status_code == 403, "a community does not declare its own points"
    nowhere = await response.client.post(
        "/v1/points", json={"unit": COMMUNITY, "reason": "x"}, headers=response.auth("district")
    )
    assert nowhere.status_code == 422

    first = await declare_point(
        response,
        compound="枫林湾一期",
        building="3号楼",
        start=(now - timedelta(days=2)).isoformat(),
        measures=[
            {"kind": "disinfect", "applies_to": "compounds", "deadline_hours": 24},
            {"kind": "testing_round", "applies_to": "unit", "deadline_hours": 24},
        ],
    )
    assert len(first["tasks_issued"]) == 2
    tasks = await response.tasks(COMMUNITY, "community_a")
    assert sorted((t["kind"], t["compound"]) for t in tasks) == [
        ("disinfect", "枫林湾一期"),
        ("testing_round", None),
    ]
    message = response.tap.bodies("point")[-1]
    assert message["event"] == "point_declared" and "reason" not in message
    await aggregator.sync()
    [point] = await aggregator.points()
    start_day = (now - timedelta(days=2)).astimezone(ZONE).date()
    assert point["planned_lifting"] == str(start_day + timedelta(days=14))
    assert (point["last_case_day"], point["cases_after_declaration"]) == (None, 0)

    # a case in the compound's other building does not count; one in building 3 does
    day = await report_cases(
        aggregator.url,
        aggregator.settings,
        {"compound": "枫林湾一期", "building": "5号楼"},
        {"compound": "枫林湾一期", "building": "3号楼"},
    )
    await aggregator.sync()
    [point] = await aggregator.points()
    assert point["last_case_day"] == str(day)
    assert point["planned_lifting"] == str(day + timedelta(days=14)), "moved by the case"
    assert point["cases_after_declaration"] == 1

    old = await declare_point(
        response, building="7号楼", start=(now - timedelta(days=20)).isoformat()
    )
    await aggregator.sync()
    assert await aggregator.rollup() | {"risk_level": None} == {
        "risk_level": None,
        "declared_level": None,
        "level_suggestion": "raise",
        "points_active": 2,
        "points_overdue_for_lifting": 1,
        "point_cases_after_declaration": 1,
    }
    assert (await aggregator.rollup(STREET))["points_overdue_for_lifting"] == 1

    lift = f"/v1/points/{old['id']}/lift"
    lifted = await response.client.post(
        lift, json={"reason": "14天无新增"}, headers=response.auth("district")
    )
    assert lifted.status_code == 200, lifted.text
    again = await response.client.post(
        lift, json={"reason": "again"}, headers=response.auth("district")
    )
    assert again.status_code == 409
    await response.tap.wait_for(
        "the lifting", lambda: response.tap.bodies("point")[-1]["event"] == "point_lifted"
    )
    await aggregator.sync()
    rollup = await aggregator.rollup()
    assert (rollup["points_active"], rollup["points_overdue_for_lifting"]) == (1, 0)
    listed = (
        await response.client.get(
            "/v1/points", params={"unit": STREET}, headers=response.auth("street_reader")
        )
    ).json()["points"]
    assert sorted((p["building"], p["lifted"]) for p in listed) == [
        ("3号楼", False),
        ("7号楼", True),
    ]
    measures = next(p for p in listed if p["building"] == "3号楼")["measures"]
    assert [(m["kind"], m["status"]) for m in measures] == [
        ("disinfect", "pending"),
        ("testing_round", "pending"),
    ]

    # a rebuild from both streams into a new database gives the same figures
    rebuilt = aggregator.settings.model_copy(
        update={"aggregator_database_url": sqlite_url(tmp_path / "rebuilt", "aggregator")}
    )
    await rebuild(rebuilt)
    engine = make_engine(rebuilt.database_url())
    try:
        again_side = Aggregator(rebuilt, engine, aggregator.url)
        assert await again_side.rollup() == await aggregator.rollup()
        assert await again_side.rollup(STREET) == await aggregator.rollup(STREET)
        assert await again_side.points() == await aggregator.points()
        await again_side.http.aclose()
    finally:
        await engine.dispose()
