"""The data-quality and timeliness scorecard (``/v1/units/{code}/quality``) from a real
stream into SQLite and PostgreSQL: late, missing and never-sent closes, case reports past the
class-A limit, zero reports contradicted by the day's fevers, declared counts that differ
from the community's own events, the street's rollup, CSV/XLSX and the token's scope; a
rebuild from the stream gives the same scorecard."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.harness import consume
from zhibao_aggregator.bootstrap import quality_reader, rebuild
from zhibao_aggregator.http_api import add_error_handlers, build_quality_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.quality_reader import QualityReader
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.events import PublishedEvent, parse_published, published_payload
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
STREET = "640106001"
A, B, SILENT = "640106001001", "640106001002", "640106001003"
OTHER_STREET = "640106002"
TODAY = datetime.now(UTC).astimezone(ZONE).date()
#: The period: days -4 to -2, whose closes were all due (day -2's at 09:00 on day -1).
FIRST, LAST = TODAY - timedelta(days=4), TODAY - timedelta(days=2)
_ids = itertools.count(1)


def at(offset: int, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` district time on day ``offset`` (relative to today)."""
    day = TODAY + timedelta(days=offset)
    return datetime.combine(day, datetime.min.time(), tzinfo=ZONE) + timedelta(
        hours=hour, minutes=minute
    )


def event(
    community: str, kind: str, data: dict[str, Any], when: datetime, received: datetime
) -> PublishedEvent:
    """A published event as intake would put it on the bus."""
    body = {
        "specversion": "1.0",
        "id": f"q-{next(_ids)}",
        "source": f"/{community}/desk",
        "subject": community,
        "type": f"zhibao.{kind}.v1",
        "time": when.isoformat(),
        "reporter": "tok",
        "receivedat": received.isoformat(),
        "data": data,
    }
    return parse_published(json.dumps(body))


def screening(
    community: str, on: int, temperature: float = 36.5, late: bool = False
) -> PublishedEvent:
    when = at(on, 10)
    received = at(on + 1, 11) if late else when + timedelta(minutes=1)
    data = {"temperature_c": temperature, "site": "gate"}
    return event(community, "screening", data, when, received)


def close(
    community: str, on: int, received: datetime, zero: bool = False, **counts: int
) -> PublishedEvent:
    data: dict[str, Any] = {"date": (TODAY + timedelta(days=on)).isoformat(), "zero": zero}
    if counts:
        data["counts"] = counts
    return event(community, "daily_report", data, received, received)


def case(community: str, on: int, person: str, lag: timedelta) -> PublishedEvent:
    data = {"person": {"pid": person * 32}, "classification": "confirmed"}
    return event(community, "case", data, at(on, 10), at(on, 10) + lag)


#: A: on-time closes for days -4 and -3, day -2's close a day late (10:00 on day -1);
#: a confirmed case reported 3 h after classification (outside class A's 2 h), one after
#: 30 min; a screening of day -3 that reached intake a day late.
#: B: a zero close on day -3 (the fever comes later, below); day -4's close declares 5
#: screenings and 1 fever where its events add up to 2 and 0; day -2's declares 1 screening,
#: which is right. SILENT and the street's seven other communities never report anything.
EVENTS_A = [
    screening(A, -4),
    screening(A, -3, late=True),
    screening(A, -2),
    close(A, -4, at(-4, 20)),
    close(A, -3, at(-3, 21)),
    close(A, -2, at(-1, 10)),
    case(A, -3, "a", timedelta(hours=3)),
    case(A, -2, "b", timedelta(minutes=30)),
]
EVENTS_B = [
    screening(B, -4),
    screening(B, -4),
    close(B, -4, at(-4, 20), screenings=5, fevers=1),
    close(B, -3, at(-3, 20), zero=True),
    screening(B, -2),
    close(B, -2, at(-2, 20), screenings=1),
]
#: Reported after the zero close, about the same day: the close is contradicted.
LATE_FEVER = [screening(B, -3, temperature=38.4)]


async def publish(url: str, settings: AggregatorSettings, events: Sequence[PublishedEvent]) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for item in events:
            await js.publish(
                event_subject(item.subject, item.type.short),
                published_payload(item),
                headers={"Nats-Msg-Id": item.dedup_key},
                stream=EVENTS_STREAM,
            )
    finally:
        await client.close()


class Rejected:
    """A rejection source as the audit projection will answer (two rejected in A)."""

    async def __call__(
        self, communities: Sequence[str], first: date, last: date
    ) -> Mapping[tuple[str, str], int]:
        assert A in communities and first == FIRST and last == LAST
        return {(A, "invalid_data"): 1, (A, "out_of_scope"): 1}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """SQLite in the data dir (None), or a fresh PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


@pytest.fixture
async def database(
    tmp_path: Path, nats_server: NatsServer, database_url: str | None
) -> AsyncIterator[tuple[AggregatorSettings, AsyncEngine]]:
    """Settings on the nats-server and a migrated database of either kind."""
    url = database_url
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        aggregator_database_url=url,
        _env_file=None,
    )
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    yield settings, engine
    await engine.dispose()


def client(quality: QualityReader, settings: AggregatorSettings, scope: str) -> httpx.AsyncClient:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=[scope], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_quality_router(quality, TokenAuth(tokens)))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"authorization": f"Bearer {secret}"},
    )


PERIOD = {"from": str(FIRST), "to": str(LAST)}


async def scorecard(quality: QualityReader, settings: AggregatorSettings) -> dict[str, Any]:
    async with client(quality, settings, STREET) as http:
        answer = await http.get(f"/v1/units/{STREET}/quality", params=PERIOD)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def child(card: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in card["children"] if c["code"] == code)
    return found


async def test_the_scorecard_judges_closes_case_lags_and_consistency_and_rolls_up(
    database: tuple[AggregatorSettings, AsyncEngine], nats_server: NatsServer, tmp_path: Path
) -> None:
    settings, engine = database
    quality = quality_reader(settings, engine)
    await publish(nats_server.url, settings, EVENTS_A + EVENTS_B)
    await consume(nats_server.url, engine, settings)

    before = await scorecard(quality, settings)
    assert child(before, B)["quality"]["zero_contradicted"] == 0, "no fever known yet"

    await publish(nats_server.url, settings, LATE_FEVER)
    await consume(nats_server.url, engine, settings)
    card = await scorecard(quality, settings)
    assert card["from"] == str(FIRST) and card["to"] == str(LAST)
    assert card["closes_due_through"] == str(LAST)
    assert card["case_report_limit_hours"] == 2.0

    a = child(card, A)["quality"]
    assert (a["closes_expected"], a["closes_on_time"], a["closes_late"]) == (3, 2, 1)
    assert a["closes_missing"] == 0 and a["on_time_rate"] == round(2 / 3, 4)
    assert (a["case_reports"], a["case_reports_in_limit"]) == (2, 1), "3 h is past class A's 2 h"
    assert a["case_in_limit_share"] == 0.5
    assert (a["case_lag_median_h"], a["case_lag_p90_h"]) == (0.5, 3.0)
    assert a["late_events"] == 1 and a["days_since_last_event"] == 0
    assert a["corrections"] == 0 and a["corrected_share"] == 0.0
    assert a["rejected"] == 0 and a["rejected_by_reason"] == {}, "no rejection source yet"

    b = child(card, B)
    assert (b["quality"]["zero_contradicted"], b["quality"]["counts_differing"]) == (1, 1)
    day_minus = {f["date"]: f for f in b["flags"]}
    assert day_minus[str(TODAY - timedelta(days=3))]["zero_contradicted"] is True
    assert day_minus[str(FIRST)]["counts_differing"] == {
        "screenings": {"declared": 5, "counted": 2},
        "fevers": {"declared": 1, "counted": 0},
    }
    assert str(LAST) not in day_minus, "day -2's declared screening is right"
    assert b["quality"]["closes_on_time"] == 3

    silent = child(card, SILENT)["quality"]
    assert silent["days_since_last_event"] == "never" and silent["last_event"] is None
    assert (silent["closes_missing"], silent["on_time_rate"], silent["score"]) == (3, 0.0, 0.0)

    street = card["unit"]["quality"]
    assert street["communities"] == 10 and street["closes_expected"] == 30
    assert (street["closes_on_time"], street["closes_late"], street["closes_missing"]) == (5, 1, 24)
    assert street["never_reported"] == 8
    assert (street["zero_contradicted"], street["counts_differing"]) == (1, 1)
    assert (street["case_reports"], street["case_reports_in_limit"]) == (2, 1)
    assert street["days_since_last_event"] == 0
    scores = {c["code"]: c["quality"]["score"] for c in card["children"]}
    assert 0 < scores[B] < 100 and 0 < scores[A] < 100 and scores[SILENT] == 0

    expected_a = 100 * (40 * 2 / 3 + 15 * (1 - a["late_share"]) + 10 + 5 + 20 * 0.5 + 10) / 100
    assert a["score"] == round(expected_a, 1), "the README's formula with default weights"

    rebuilt = settings.model_copy(
        update={"aggregator_database_url": sqlite_url(tmp_path / "rebuilt", "aggregator")}
    )
    await rebuild(rebuilt)
    engine = make_engine(rebuilt.database_url())
    try:
        assert await scorecard(quality_reader(rebuilt, engine), rebuilt) == card
    finally:
        await engine.dispose()


async def test_rejections_by_reason_come_from_the_rejection_source(
    database: tuple[AggregatorSettings, AsyncEngine], nats_server: NatsServer
) -> None:
    settings, engine = database
    await publish(nats_server.url, settings, EVENTS_A)
    await consume(nats_server.url, engine, settings)
    quality = quality_reader(settings, engine)
    quality.rejections = Rejected()
    card = await scorecard(quality, settings)
    for figures in (child(card, A)["quality"], card["unit"]["quality"]):
        assert figures["rejected_by_reason"] == {"invalid_data": 1, "out_of_scope": 1}
        assert figures["rejected_share"] == round(2 / (figures["events"] + 2), 4)


async def test_csv_xlsx_scope_and_bad_periods(
    database: tuple[AggregatorSettings, AsyncEngine], nats_server: NatsServer
) -> None:
    settings, engine = database
    await publish(nats_server.url, settings, EVENTS_A)
    await consume(nats_server.url, engine, settings)
    quality = quality_reader(settings, engine)
    async with client(quality, settings, STREET) as http:
        answer = await http.get(f"/v1/units/{STREET}/quality.csv", params=PERIOD)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
        assert len(rows) == 1 + 10 + 1, "header, the ten communities, the street"
        header = rows[0]
        by_code = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
        assert by_code[SILENT]["距上次上报(天) days since last event"] == "never"
        assert by_code[A]["迟报 late closes"] == "1"
        assert by_code[STREET]["未报 missing closes"] == "27"

        answer = await http.get(f"/v1/units/{STREET}/quality.xlsx", params=PERIOD)
        assert answer.status_code == 200
        sheet = load_workbook(io.BytesIO(answer.content)).active
        assert sheet is not None
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert values[0][:3] == ["代码 code", "名称 name", "期间 period"]
        assert [row[0] for row in values[1:]][-1] == STREET

        for path in (f"/v1/units/{OTHER_STREET}/quality", "/v1/units/640106002001/quality.csv"):
            assert (await http.get(path)).status_code == 403, path
        assert (await http.get("/v1/units/6401/quality.xlsx")).status_code == 403
        backwards = await http.get(
            f"/v1/units/{STREET}/quality", params={"from": str(LAST), "to": str(FIRST)}
        )
        assert backwards.status_code == 422
        assert (await http.get(f"/v1/units/{STREET}/quality?from=2020-02-30")).status_code == 422
        assert (await http.get("/v1/units/640106001999/quality")).status_code == 404
        default = (await http.get(f"/v1/units/{STREET}/quality")).json()
        # the service's today now (TODAY is the module's: a long run may cross midnight)
        today = datetime.now(ZONE).date()
        assert (default["from"], default["to"]) == (str(today - timedelta(days=6)), str(today))
