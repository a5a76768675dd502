"""Out-of-range dates are a clear 4xx everywhere, never a 500 or a dead letter.

Dates in event data (a daily report's day, an onset, an isolation's end) must
lie within 401 days of today (the late-data horizon of ``time`` plus a day of
time zones); the read APIs answer for days from 2000-01-01 to 401 days ahead.
Intake runs as a real server on a real nats-server; the aggregator's API runs
on a real migrated SQLite database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.events import COMMUNITY_A, case, screening
from tests.support.intake import RunningIntake
from zhibao_aggregator.bootstrap import public_summaries, reader
from zhibao_aggregator.http_api import add_error_handlers, build_public_router, build_router
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, TokenStore

EXTREMES = ["0001-01-01", "9999-12-31", "1999-12-31"]


def _daily_report(day: str) -> dict[str, Any]:
    event = screening()
    event["type"] = "zhibao.daily_report.v1"
    event["data"] = {"date": day, "zero": True}
    return event


def _isolation(until: str) -> dict[str, Any]:
    event = case(person={"ref": "r-1"}, classification="confirmed")
    event["type"] = "zhibao.isolation.v1"
    event["data"] = {"person": {"ref": "r-1"}, "action": "start", "kind": "home", "until": until}
    return event


def _onset(day: str) -> dict[str, Any]:
    event = case(person={"ref": "r-2"}, classification="suspected")
    event["data"]["onset_date"] = day
    return event


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
@pytest.mark.parametrize(
    ("build", "field"),
    [(_daily_report, "data.date"), (_isolation, "data.until"), (_onset, "data.onset_date")],
)
def test_intake_refuses_an_event_dated_out_of_range_naming_the_field(
    intake: RunningIntake, day: str, build: Any, field: str
) -> None:
    token = intake.token(COMMUNITY_A)
    answer = httpx.post(
        f"{intake.url}/v1/events",
        json=[build(day), _daily_report(date.today().isoformat())],
        headers={"authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert answer.status_code == 207, answer.text
    refused, accepted = answer.json()["results"]
    assert accepted["status"] == "accepted"
    assert refused["code"] == "invalid"
    assert refused["errors"][0]["field"] == field
    assert "must lie within 401 days of today" in refused["errors"][0]["message"]


@pytest.fixture
async def aggregator_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The aggregator's read and public API on a migrated SQLite database, a read token."""
    settings = AggregatorSettings(data_dir=tmp_path / "data", _env_file=None)
    url = sqlite_url(tmp_path, "aggregator")
    await migrate(url)
    engine = make_engine(url)
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=["6401"], role=Role.READ)[1]
    app = FastAPI()
    add_error_handlers(app)
    read_side = reader(settings, engine)
    app.include_router(build_router(read_side, TokenAuth(tokens)))
    public = public_summaries(settings, read_side)
    app.include_router(build_public_router(public))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"authorization": f"Bearer {secret}"},
    ) as client:
        yield client
    tokens.close()
    await engine.dispose()


UNIT = "640106"
DAY_PATHS = [
    f"/v1/units/{UNIT}/rollup",
    f"/v1/units/{UNIT}/children",
    f"/v1/units/{UNIT}/completeness",
    f"/v1/units/{UNIT}/report.csv",
    f"/v1/units/{UNIT}/report.xlsx",
    f"/v1/public/units/{UNIT}/summary",
]


@pytest.mark.parametrize("path", DAY_PATHS)
async def test_the_read_api_answers_422_for_a_day_out_of_range(
    aggregator_client: httpx.AsyncClient, path: str
) -> None:
    today = date.today()
    for day in EXTREMES:
        answer = await aggregator_client.get(path, params={"date": day})
        assert answer.status_code == 422, f"{path}?date={day}: {answer.status_code}"
        assert answer.json()["detail"][0]["loc"] == ["query", "date"]
        assert "must lie between 2000-01-01 and" in answer.json()["detail"][0]["msg"]
    # a readable day of the public summary may not be released (404, saying why)
    accepted = {200, 404} if "/public/" in path else {200}
    for readable in (date(2000, 1, 1), today - timedelta(days=401), today):
        answer = await aggregator_client.get(path, params={"date": readable.isoformat()})
        assert answer.status_code in accepted, f"{path}?date={readable}: {answer.text}"


async def test_a_series_answers_422_for_from_or_to_out_of_range(
    aggregator_client: httpx.AsyncClient,
) -> None:
    path = f"/v1/units/{UNIT}/series"
    today = date.today().isoformat()
    for first, last, bad in [
        ("0001-01-01", "0001-01-05", "from"),
        ("9999-12-25", "9999-12-31", "from"),
        (today, "9999-12-31", "to"),
    ]:
        params = {"metric": "screenings", "from": first, "to": last}
        answer = await aggregator_client.get(path, params=params)
        assert answer.status_code == 422, f"{first}..{last}: {answer.status_code}"
        assert answer.json()["detail"][0]["loc"] == ["query", bad]
    answer = await aggregator_client.get(
        path, params={"metric": "screenings", "from": "2000-01-01", "to": "2000-01-31"}
    )
    assert answer.status_code == 200, answer.text
