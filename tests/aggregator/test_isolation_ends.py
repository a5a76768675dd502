"""Isolations use their ``until``: expected releases per day and kind (capacity planning of
centralised isolation), and isolations past their planned end without an ``end`` event.
Exact under redelivery and late events; a rebuild from the stream gives the same figures."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.harness import consume
from zhibao_aggregator.bootstrap import reader, rebuild
from zhibao_aggregator.http_api import add_error_handlers, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.events import PublishedIsolation, published_payload
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
COMMUNITY, STREET = "640106001001", "640106001"
TODAY = datetime.now(UTC).astimezone(ZONE).date()
_ids = itertools.count(1)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def isolation(
    person: str, action: str, kind: str, on: int, until: int | None = None
) -> PublishedIsolation:
    """An isolation event of ``person`` on day ``on`` (relative to today), planned to end
    on day ``until`` when given; today's events happened a minute ago."""
    if on == 0:
        when = datetime.now(UTC) - timedelta(minutes=1)
    else:
        when = datetime.combine(day(on), datetime.min.time(), tzinfo=ZONE) + timedelta(hours=9)
    data: dict[str, Any] = {"person": {"pid": person * 32}, "action": action, "kind": kind}
    if until is not None:
        data["until"] = day(until).isoformat()
    return PublishedIsolation.model_validate(
        {
            "specversion": "1.0",
            "id": f"iso-{next(_ids)}",
            "source": f"/{COMMUNITY}/grid",
            "subject": COMMUNITY,
            "type": "zhibao.isolation.v1",
            "time": when,
            "reporter": "tok",
            "receivedat": datetime.now(UTC) - timedelta(seconds=30),
            "data": data,
        }
    )


#: a: home, released in 2 days. b: centralised, in 2 days. c: centralised, planned end 2 days
#: ago, no end: overdue. e: home, extended from +5 to +7 by a later check. f: released
#: early (ended today). d (late end, see below): home, planned end 3 days ago.
ON_TIME = [
    isolation("a", "start", "home", -3, until=2),
    isolation("b", "start", "centralized", -5, until=2),
    isolation("c", "start", "centralized", -10, until=-2),
    isolation("c", "check", "centralized", -1),
    isolation("d", "start", "home", -10, until=-3),
    isolation("e", "start", "home", -2, until=5),
    isolation("e", "check", "home", -1, until=7),
    isolation("f", "start", "home", -4, until=1),
    isolation("f", "end", "home", 0),
]
#: d's end, reported late: d was released yesterday.
LATE = [isolation("d", "end", "home", -1)]


async def _publish(url: str, settings: AggregatorSettings, events: list[Any], tag: str) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for event in events:
            await js.publish(
                event_subject(event.subject, event.type.short),
                published_payload(event),
                headers={"Nats-Msg-Id": f"{event.dedup_key} {tag}"},
                stream=EVENTS_STREAM,
            )
    finally:
        await client.close()


def _client(engine: AsyncEngine, settings: AggregatorSettings) -> httpx.AsyncClient:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=[STREET], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_router(reader(settings, engine), TokenAuth(tokens)))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"authorization": f"Bearer {secret}"},
    )


async def _figures(engine: AsyncEngine, settings: AggregatorSettings) -> dict[str, Any]:
    """What the API says: releases from 3 days ago to 8 days ahead, overdue per day."""
    async with _client(engine, settings) as client:
        releases = await client.get(
            f"/v1/units/{STREET}/isolation-releases",
            params={"from": str(day(-3)), "to": str(day(8))},
        )
        assert releases.status_code == 200, releases.text
        overdue: dict[int, int] = {}
        for offset in (-3, -2, -1, 0):
            rollup = await client.get(
                f"/v1/units/{COMMUNITY}/rollup", params={"date": str(day(offset))}
            )
            overdue[offset] = rollup.json()["figures"]["isolations_overdue"]
        today = (await client.get(f"/v1/units/{COMMUNITY}/rollup")).json()["figures"]
    body: dict[str, Any] = releases.json()
    return {
        "releases": {
            (date.fromisoformat(d["date"]) - TODAY).days: (d["home"], d["centralized"])
            for d in body["days"]
            if d["total"]
        },
        "overdue_now": body["isolations_overdue"],
        "overdue_by_day": overdue,
        "due_today": (
            today["isolation_release_due_home"],
            today["isolation_release_due_centralized"],
        ),
    }


async def test_releases_per_day_and_overdue_isolations_exact_under_redelivery_and_late_events(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    live = AggregatorSettings(data_dir=tmp_path / "live", nats_url=nats_server.url, _env_file=None)
    await migrate(live.database_url())
    engine = make_engine(live.database_url())
    rebuilt_settings = live.model_copy(
        update={"aggregator_database_url": sqlite_url(tmp_path / "rebuilt", "aggregator")}
    )
    rebuilt_engine = make_engine(rebuilt_settings.database_url())
    try:
        await _publish(nats_server.url, live, ON_TIME, "first")
        await _publish(nats_server.url, live, ON_TIME[:4], "again")  # beyond the dup window
        await consume(nats_server.url, engine, live)
        before = await _figures(engine, live)
        assert before["releases"] == {-3: (1, 0), -2: (0, 1), 2: (1, 1), 7: (1, 0)}
        assert before["overdue_now"] == 2, "c and d: planned end passed, no end event"
        assert before["overdue_by_day"] == {-3: 0, -2: 1, -1: 2, 0: 2}
        assert before["due_today"] == (0, 0)

        await _publish(nats_server.url, live, LATE, "late")
        await consume(nats_server.url, engine, live)
        after = await _figures(engine, live)
        assert after["releases"] == {-2: (0, 1), 2: (1, 1), 7: (1, 0)}, "d is out"
        assert after["overdue_now"] == 1, "c only"
        assert after["overdue_by_day"] == {-3: 0, -2: 1, -1: 1, 0: 1}, "d ended on day -1"

        replayed = await rebuild(rebuilt_settings)
        assert replayed == len(ON_TIME) + 4 + len(LATE)
        assert await _figures(rebuilt_engine, rebuilt_settings) == after
    finally:
        await engine.dispose()
        await rebuilt_engine.dispose()


async def test_the_releases_query_is_checked(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    async with _client(sqlite_engine, settings) as client:
        base = f"/v1/units/{STREET}/isolation-releases"
        default = await client.get(base)
        assert default.status_code == 200
        assert len(default.json()["days"]) == 14, "today and the 13 days after"
        backwards = await client.get(base, params={"from": str(day(3)), "to": str(day(1))})
        assert backwards.status_code == 422
        assert (await client.get(base, params={"from": "2020-02-30"})).status_code == 422
        assert (await client.get("/v1/units/640106001999/isolation-releases")).status_code == 404
