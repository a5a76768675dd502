"""Rollup reads answered before FastAPI (``read_fastpath``) give exactly FastAPI's answers,
and every request the fast path must not answer still gets FastAPI's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import generate
from zhibao_aggregator.bootstrap import reader, rules
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.read_fastpath import AggregatorApp, FastRollup
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import EARLIEST_READABLE_DAY
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, TokenStore

STREET = "640106001"
#: A community, its street, district and city, and a street of another district.
UNITS = ("640106001001", STREET, "640106", "6401", "640104001")


@pytest.fixture
async def loaded(sqlite_engine: AsyncEngine, settings: AggregatorSettings) -> AsyncEngine:
    """A database holding a few hundred events of the last 20 days."""
    scenario = generate(seed=11, screenings=400, persons=40, isolated=20)
    batch = [Delivery(event, "s", n, 1) for n, event in enumerate(scenario.unique, start=1)]
    async with sqlite_engine.begin() as conn:
        await apply_batch(conn, batch, rules(settings))
    return sqlite_engine


class Apps:
    """The same read side behind three apps: FastAPI's route alone, the route with the
    fast path (as the service mounts it), and the fast path with no route at all (what
    it declines is FastAPI's plain 404 there)."""

    def __init__(self, engine: AsyncEngine, settings: AggregatorSettings) -> None:
        store = TokenStore.in_data_dir(settings.data_dir)
        self.city = store.create(scopes=["6401"], role=Role.READ)[1]
        self.street = store.create(scopes=[STREET], role=Role.READ)[1]
        self.operator = store.create(scopes=["640106"], role=Role.OPERATE)[1]
        self.reporter = store.create(scopes=["6401"], role=Role.REPORT)[1]
        self.read_side, auth = reader(settings, engine), TokenAuth(store)
        self.plain, self.fast, self.bare = AggregatorApp(), AggregatorApp(), AggregatorApp()
        for app in (self.plain, self.fast):
            add_error_handlers(app)
            app.include_router(build_router(self.read_side, auth))
        for app in (self.fast, self.bare):
            app.fast_rollup = FastRollup(self.read_side, auth)
        self.today = self.read_side.calendar.today(datetime.now(UTC))


async def _request(
    app: AggregatorApp, url: str, secret: str | None, method: str = "GET", root_path: str = ""
) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    transport = httpx.ASGITransport(app=app, root_path=root_path, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, url, headers=headers)


async def test_plain_reads_are_answered_by_the_fast_path_exactly_as_by_fastapi(
    loaded: AsyncEngine, settings: AggregatorSettings
) -> None:
    apps = Apps(loaded, settings)
    days = ["", f"?date={apps.today}", f"?date={apps.today - timedelta(days=3)}"]
    readers = [(code, apps.city) for code in UNITS]
    readers += [(STREET, apps.street), ("640106001001", apps.street), ("640106", apps.operator)]
    counted = 0
    for code, secret in readers:
        for query in days:
            url = f"/v1/units/{code}/rollup{query}"
            plain = await _request(apps.plain, url, secret)
            assert plain.status_code == 200, (url, plain.text)
            figures = plain.json()["figures"].values()
            counted += sum(1 for v in figures if isinstance(v, int | float) and v)
            for name, app in (("fast", apps.fast), ("bare", apps.bare)):
                answer = await _request(app, url, secret)
                assert answer.status_code == 200, (name, url, answer.text)
                assert answer.content == plain.content, (name, url)
                assert answer.headers.raw == plain.headers.raw, (name, url)
    assert counted > 20  # the history shows in the figures compared, not only zeros


async def test_requests_the_fast_path_declines_get_fastapis_answers(
    loaded: AsyncEngine, settings: AggregatorSettings
) -> None:
    apps = Apps(loaded, settings)
    too_early = EARLIEST_READABLE_DAY - timedelta(days=1)
    declined = [
        ("/v1/units/6401/rollup", None, 401),
        ("/v1/units/6401/rollup", "not-a-token", 401),
        ("/v1/units/6401/rollup", apps.reporter, 403),
        ("/v1/units/640104001/rollup", apps.street, 403),
        ("/v1/units/6401/rollup", apps.operator, 403),
        ("/v1/units/640106999/rollup", apps.city, 404),
        ("/v1/units/6401/rollup/", apps.city, 307),
        ("/v1/units/6401%2F01/rollup", apps.city, 404),
        (f"/v1/units/6401/rollup?date={too_early}", apps.city, 422),
        ("/v1/units/6401/rollup?date=2026-02-30", apps.city, 422),
        ("/v1/units/6401/rollup?date=2026-W49-6", apps.city, 422),
        (f"/v1/units/6401/rollup?date={apps.today}&date=x", apps.city, 422),
        (f"/v1/units/6401/rollup?date={apps.today}&extra=1", apps.city, 200),
    ]
    for url, secret, status in declined:
        plain = await _request(apps.plain, url, secret)
        fast = await _request(apps.fast, url, secret)
        assert plain.status_code == status, (url, plain.text)
        assert (fast.status_code, fast.content) == (plain.status_code, plain.content), url
        bare = await _request(apps.bare, url, secret)
        assert bare.status_code == 404 and bare.json() == {"detail": "Not Found"}, url
    # Another method, or the app mounted below a path: FastAPI's too.
    head = await _request(apps.bare, "/v1/units/6401/rollup", apps.city, method="HEAD")
    assert head.status_code == 404
    mounted = await _request(apps.bare, "/v1/units/6401/rollup", apps.city, root_path="/x")
    assert mounted.status_code == 404


async def test_an_unexpected_error_answers_500_and_the_read_is_not_run_again(
    loaded: AsyncEngine, settings: AggregatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = Apps(loaded, settings)
    calls: list[str] = []

    async def failing(code: str, day: object) -> None:
        calls.append(code)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(apps.read_side, "figures", failing)
    answer = await _request(apps.fast, "/v1/units/6401/rollup", apps.city)
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    assert calls == ["6401"]
