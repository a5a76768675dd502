"""The province (2 digits) above the cities: its rollup is the sum of its cities', through a
real nats-server and database, and a token scoped to the province reads it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import ZONE, Scenario
from tests.aggregator.harness import consume, publish
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine
from zhibao_shared.events import PublishedDailyReport, PublishedEvent, PublishedScreening
from zhibao_shared.hierarchy import Level, Registry, Unit, load_registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

#: a second city under the province: 石嘴山市 with one district, street and two communities
SECOND_CITY = [
    Unit(code="6402", name="石嘴山市", level=Level.CITY, parent="64"),
    Unit(code="640202", name="大武口区", level=Level.DISTRICT, parent="6402"),
    Unit(code="640202001", name="长胜街道", level=Level.STREET, parent="640202"),
    Unit(code="640202001001", name="甲社区", level=Level.COMMUNITY, parent="640202001"),
    Unit(code="640202001002", name="乙社区", level=Level.COMMUNITY, parent="640202001"),
]
FLOWS = ("events", "screenings", "fevers", "reports_received")


@pytest.fixture
def two_cities(tmp_path: Path, settings: AggregatorSettings) -> AggregatorSettings:
    """Settings whose registry is the sample (Yinchuan) plus a second city of Ningxia."""
    path = tmp_path / "ningxia.yaml"
    path.write_text(Registry([*load_registry(), *SECOND_CITY]).to_yaml(), "utf-8")
    return settings.model_copy(update={"registry_path": path})


def _scenario(communities: list[str], now: datetime) -> Scenario:
    rng = random.Random(64)
    events: list[PublishedEvent] = []
    for i in range(240):
        community = communities[i % len(communities)]
        when = now - timedelta(hours=rng.randrange(1, 40))
        envelope = {
            "specversion": "1.0",
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": f"/{community}/gate",
            "subject": community,
            "time": when,
            "reporter": "tok-test",
            "receivedat": when,
        }
        temperature = rng.choice([36.6, 37.5, 38.2])
        data = {"temperature_c": temperature, "site": "gate", "travel_from_risk_area": False}
        events.append(
            PublishedScreening.model_validate(
                envelope | {"type": "zhibao.screening.v1", "data": data}
            )
        )
    for community in communities[::2]:
        envelope = {
            "specversion": "1.0",
            "id": f"report-{community}",
            "source": f"/{community}/form",
            "subject": community,
            "time": now,
            "reporter": "tok-test",
            "receivedat": now,
        }
        data = {"date": now.astimezone(ZONE).date().isoformat(), "zero": True}
        events.append(
            PublishedDailyReport.model_validate(
                envelope | {"type": "zhibao.daily_report.v1", "data": data}
            )
        )
    days = sorted({e.time.astimezone(ZONE).date() for e in events})
    return Scenario(unique=events, publish=[(e, f"{e.source} {e.id}") for e in events], days=days)


def _communities(registry: Registry) -> list[str]:
    """A few communities of three districts of Yinchuan and both of the second city."""
    codes = [c.code for d in ("640104", "640106", "640181") for c in registry.communities_under(d)]
    return codes[::9] + [u.code for u in SECOND_CITY if u.level is Level.COMMUNITY]


async def test_the_province_rollup_is_the_sum_of_its_cities(
    nats_server: NatsServer, two_cities: AggregatorSettings
) -> None:
    settings = two_cities
    registry = load_registry(settings.registry_path)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    scenario = _scenario(_communities(registry), now)
    await publish(nats_server.url, scenario, settings)
    db_url = settings.database_url()
    await migrate(db_url)
    engine = make_engine(db_url)
    try:
        consumer = await consume(nats_server.url, engine, settings)
        assert consumer.stats.dead_lettered == 0
        read_side = reader(settings, engine)
        for day in scenario.days:
            figures = await read_side.figures_of(["64", "6401", "6402"], day)
            await _check_day(figures, scenario, day)
        communities = await read_side.completeness("64", scenario.days[-1])
        assert len(communities["missing"]) + communities["reported"] == len(
            registry.communities_under("64")
        )
    finally:
        await engine.dispose()


def _count(value: object) -> int:
    assert value is None or isinstance(value, int)
    return value or 0


async def _check_day(
    figures: Mapping[str, Mapping[str, object]], scenario: Scenario, day: date
) -> None:
    def published(prefix: str, metric: str) -> int:
        mine = [e for e in scenario.unique if e.subject.startswith(prefix)]
        mine = [e for e in mine if e.time.astimezone(ZONE).date() == day]
        if metric == "events":
            return len(mine)
        if metric == "screenings":
            return sum(isinstance(e, PublishedScreening) for e in mine)
        if metric == "fevers":
            return sum(
                isinstance(e, PublishedScreening) and e.data.temperature_c >= 37.3 for e in mine
            )
        return sum(isinstance(e, PublishedDailyReport) and e.data.date == day for e in mine)

    for metric in FLOWS:
        cities = [_count(figures[c].get(metric)) for c in ("6401", "6402")]
        assert cities == [published("6401", metric), published("6402", metric)], metric
        assert figures["64"].get(metric, 0) == sum(cities), metric
    assert figures["64"]["reports_missing"] == sum(
        _count(figures[c]["reports_missing"]) for c in ("6401", "6402")
    )


async def test_a_province_scoped_token_reads_the_province(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    province = tokens.create(scopes=["64"], role=Role.READ)[1]
    city = tokens.create(scopes=["6401"], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_router(reader(settings, sqlite_engine), TokenAuth(tokens)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        as_province = {"authorization": f"Bearer {province}"}
        rollup = await client.get("/v1/units/64/rollup", headers=as_province)
        assert rollup.status_code == 200 and rollup.json()["unit"] == "64"
        unit = (await client.get("/v1/units/64", headers=as_province)).json()
        assert unit["unit"]["level"] == "province" and unit["parent"] is None
        children = (await client.get("/v1/units/64/children", headers=as_province)).json()
        assert [c["code"] for c in children["children"]] == ["6401"]
        assert (await client.get("/v1/units/640106/rollup", headers=as_province)).status_code == 200
        as_city = {"authorization": f"Bearer {city}"}
        assert (await client.get("/v1/units/64/rollup", headers=as_city)).status_code == 403
