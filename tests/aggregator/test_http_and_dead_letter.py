"""The HTTP API answers what a district officer asks; poison messages are parked, not lost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import generate
from tests.aggregator.harness import consume, publish
from tests.support.clock import earlier_today
from zhibao_aggregator.bootstrap import quality_reader, reader, rules
from zhibao_aggregator.http_api import add_error_handlers, build_quality_router, build_router
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchHandler, Delivery
from zhibao_shared.events import PublishedCase, bundle_payload, published_payload
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import DEAD_LETTER_STREAM, EVENTS_STREAM, bundle_subject
from zhibao_shared.tokens import Role, TokenStore

COMMUNITY = "640106001001"


def _confirmed(pid: str, event_id: str) -> PublishedCase:
    now = earlier_today(timedelta(minutes=5))  # today's: the rollups read without a date
    return PublishedCase.model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": f"/{COMMUNITY}/his",
            "subject": COMMUNITY,
            "type": "zhibao.case.v1",
            "time": now,
            "reporter": "tok",
            "receivedat": now,
            "data": {"person": {"pid": pid}, "classification": "confirmed"},
        }
    )


async def _client(
    engine: AsyncEngine, settings: AggregatorSettings, scope: str = "6401"
) -> httpx.AsyncClient:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=[scope], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_router(reader(settings, engine), TokenAuth(tokens)))
    app.include_router(build_quality_router(quality_reader(settings, engine), TokenAuth(tokens)))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"authorization": f"Bearer {secret}"},
    )


async def test_a_confirmed_case_shows_at_every_level_and_in_the_report(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    event = _confirmed("a" * 32, "e1")
    batch = [Delivery(event, "s", 1, 1), Delivery(event, "s", 1, 2)]  # delivered twice
    async with sqlite_engine.begin() as conn:
        await apply_batch(conn, batch, rules(settings))
    async with await _client(sqlite_engine, settings) as client:
        for code in (COMMUNITY, "640106001", "640106", "6401"):
            body = (await client.get(f"/v1/units/{code}/rollup")).json()
            assert body["figures"]["new_confirmed"] == 1
            assert body["figures"]["current_confirmed"] == 1
            assert body["figures"]["risk_level"] == "medium"
        street = (await client.get("/v1/units/640106001/children")).json()
        assert sum(c["figures"]["new_confirmed"] for c in street["children"]) == 1
        csv = await client.get("/v1/units/640106001/report.csv")
        assert csv.status_code == 200
        assert csv.text.splitlines()[-1].startswith("640106001,")
        xlsx = await client.get("/v1/units/640106001/report.xlsx")
        assert xlsx.content[:2] == b"PK"
        completeness = (await client.get("/v1/units/640106001/completeness")).json()
        assert completeness["reported"] == 0
        assert COMMUNITY in completeness["missing"]


async def test_unknown_unit_is_404_and_bad_input_is_422(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    async with await _client(sqlite_engine, settings) as client:
        unknown = await client.get("/v1/units/640106999/rollup")
        assert unknown.status_code == 404 and "640106999" in unknown.json()["detail"]
        # Outside the token's scope, an unknown code is just as forbidden as a known one.
        assert (await client.get("/v1/units/999999/rollup")).status_code == 403
        assert (await client.get("/v1/units/6401/rollup?date=2020-13-45")).status_code == 422
        series = "/v1/units/6401/series?metric=nope&from=2020-01-01&to=2020-01-02"
        assert (await client.get(series)).status_code == 422


@pytest.mark.integration
async def test_undecodable_message_goes_to_dead_letter_and_the_rest_is_applied(
    nats_server: NatsServer, sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    scenario = generate(seed=5, screenings=30, persons=3, isolated=1)
    await publish(nats_server.url, scenario, settings)
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await js.publish(
            "zhibao.events.640106.640106001001.case", b"{not json", stream=EVENTS_STREAM
        )
        consumer = await consume(nats_server.url, sqlite_engine, settings)
        parked = await js.stream_info(DEAD_LETTER_STREAM)
    finally:
        await client.close()
    assert consumer.stats.dead_lettered == 1
    assert parked.state.messages == 1
    assert consumer.stats.events == len(scenario.publish)


READ_ENDPOINTS = (
    "/v1/units/{code}",
    "/v1/units/{code}/rollup",
    "/v1/units/{code}/children",
    "/v1/units/{code}/series?metric=screenings&from=2026-01-01&to=2026-01-07",
    "/v1/units/{code}/completeness",
    "/v1/units/{code}/report.csv",
    "/v1/units/{code}/report.xlsx",
    "/v1/units/{code}/quality",
    "/v1/units/{code}/quality.csv",
    "/v1/units/{code}/quality.xlsx",
)


async def test_a_street_token_reads_its_street_only_on_every_endpoint(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    own, neighbour, above, below = "640106001", "640106002", "640106", "640106001001"
    async with await _client(sqlite_engine, settings, scope=own) as client:
        for endpoint in READ_ENDPOINTS:
            for code in (own, below):
                assert (await client.get(endpoint.format(code=code))).status_code == 200, endpoint
            for code in (neighbour, above, "6401"):
                answer = await client.get(endpoint.format(code=code))
                assert answer.status_code == 403, (endpoint, code)
                assert code in answer.json()["detail"]
            anonymous = await client.get(endpoint.format(code=own), headers={"authorization": ""})
            assert anonymous.status_code == 401


async def test_a_report_token_cannot_read_rollups(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    reporter = tokens.create(scopes=["6401"], role=Role.REPORT)[1]
    async with await _client(sqlite_engine, settings) as client:
        answer = await client.get(
            "/v1/units/6401/rollup", headers={"authorization": f"Bearer {reporter}"}
        )
        assert answer.status_code == 403


async def test_reports_not_yet_due_are_pending_and_past_the_deadline_overdue(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """Today's reports are due tomorrow 09:00: not in yet is pending, not overdue;
    two days ago, past its deadline, every community without a report is overdue."""
    today = datetime.now(settings_zone(settings)).date()
    async with await _client(sqlite_engine, settings) as client:
        now = (await client.get("/v1/units/640106001/rollup")).json()["figures"]
        before = (
            await client.get(
                "/v1/units/640106001/rollup", params={"date": str(today - timedelta(days=2))}
            )
        ).json()["figures"]
    assert (now["reports_missing"], now["reports_overdue"]) == (10, 0)
    assert datetime.fromisoformat(now["reports_due_at"]) > datetime.now(UTC)
    assert (before["reports_missing"], before["reports_overdue"]) == (10, 10)
    assert before["reports_due_at"] is None


def settings_zone(settings: AggregatorSettings) -> ZoneInfo:
    """The district's time zone (its day boundaries)."""
    return ZoneInfo(settings.timezone)


@pytest.mark.integration
async def test_one_bad_event_in_a_bundle_is_parked_alone_and_its_neighbours_counted(
    nats_server: NatsServer, sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    good = [_confirmed(f"{n:032x}", f"bundled-{n}") for n in range(3)]
    parts = [published_payload(e) for e in good]
    bad = b'{"specversion": "1.0", "id": "broken"}'
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        bundle = bundle_payload([parts[0], bad, parts[1], parts[2]])
        await js.publish(bundle_subject("640106"), bundle, stream=EVENTS_STREAM)
        consumer = await consume(nats_server.url, sqlite_engine, settings)
        parked = await js.get_msg(DEAD_LETTER_STREAM, seq=1)
    finally:
        await client.close()
    assert consumer.stats.dead_lettered == 1
    assert parked.data == bad and parked.headers is not None
    assert parked.headers["Zhibao-Bundle-Index"] == "1"
    read = reader(settings, sqlite_engine)
    figures = await read.figures(COMMUNITY, read.calendar.day(good[0].time))
    assert figures["new_confirmed"] == 3


@pytest.mark.integration
async def test_an_event_that_always_fails_is_parked_alone_after_max_deliver(
    nats_server: NatsServer, sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    events = [_confirmed(f"{n:032x}", f"poison-{n}") for n in range(4)]
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        bundle = bundle_payload([published_payload(e) for e in events])
        await js.publish(bundle_subject("640106"), bundle, stream=EVENTS_STREAM)

        def refuse_poison(handler: BatchHandler) -> BatchHandler:
            async def wrapped(batch: Sequence[Delivery]) -> None:
                if any(d.event.id == "poison-2" for d in batch):
                    raise RuntimeError("a bug meets this event")
                await handler(batch)

            return wrapped

        consumer = await consume(nats_server.url, sqlite_engine, settings, wrap=refuse_poison)
        parked = await js.get_msg(DEAD_LETTER_STREAM, seq=1)
    finally:
        await client.close()
    assert consumer.stats.dead_lettered == 1
    assert parked.data is not None and b"poison-2" in parked.data
    assert parked.headers is not None and parked.headers["Zhibao-Bundle-Index"] == "2"
    read = reader(settings, sqlite_engine)
    figures = await read.figures(COMMUNITY, read.calendar.day(events[0].time))
    assert figures["new_confirmed"] == 3, "the bundle's other events are counted"
