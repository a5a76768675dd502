"""The public summary: no token, key daily figures, small counts suppressed consistently."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.bootstrap import reader, risk_rule, rules
from zhibao_aggregator.domain.public import NEW_CONFIRMED, PUBLIC_COUNTS, ReleaseRules, make_release
from zhibao_aggregator.http_api import add_error_handlers, build_public_router
from zhibao_aggregator.public_page import build_public_page
from zhibao_aggregator.public_summary import PublicSummaries
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import PUBLISHED_EVENT

PROVINCE, CITY, DISTRICT = "64", "6401", "640106"
STREET_1, STREET_2, STREET_3 = "640106001", "640106002", "640106003"
#: New confirmed cases today per street (first community of each): 2 is a small count.
CASES = {STREET_1: 2, STREET_2: 7, STREET_3: 6}
_seq = itertools.count(1)


#: The seeded events happened three days ago: that day's figures are released by now, and
#: so is a later day's (day D is released at D+1 10:00 local; with two days ago, the latest
#: release before 10:00 local was still the seeded day's).
WHEN = datetime.now(UTC) - timedelta(days=3)
DAY = WHEN.astimezone(ZoneInfo("Asia/Shanghai")).date()


def _published(community: str, kind: str, data: dict[str, Any]) -> Any:
    now = WHEN
    n = next(_seq)
    return PUBLISHED_EVENT.validate_python(
        {
            "specversion": "1.0",
            "id": f"pub-{n}",
            "source": f"/{community}/his",
            "subject": community,
            "type": f"zhibao.{kind}.v1",
            "time": now,
            "reporter": "tok",
            "receivedat": now,
            "data": data,
        }
    )


def _today() -> list[Any]:
    events = []
    for street, cases in CASES.items():
        community = f"{street}001"
        for n in range(cases):
            person = {"pid": f"{street}{n:03d}".ljust(32, "0")}
            case = {"person": person, "classification": "confirmed"}
            events.append(_published(community, "case", case))
        for n in range(20):  # screenings: 20 per street, 3 fevers in street 1 only
            fever = street == STREET_1 and n < 3
            screening = {"temperature_c": 38.2 if fever else 36.5, "site": "gate"}
            events.append(_published(community, "screening", screening))
    return events


@pytest.fixture
async def public(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A public-summary API (street level and up, threshold 5) over seeded counters; no token."""
    batch = [Delivery(e, "s", 1, n) for n, e in enumerate(_today(), 1)]
    async with sqlite_engine.begin() as conn:
        await apply_batch(conn, batch, rules(settings))
    release_rules = ReleaseRules(5, risk_rule(settings))
    summaries = PublicSummaries(
        reader(settings, engine=sqlite_engine), release_rules, min_level_street()
    )
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(build_public_router(summaries))
    app.include_router(build_public_page(summaries))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def min_level_street() -> Any:
    """The lowest public level the tests use, as ``ZHIBAO_PUBLIC_MIN_LEVEL=street`` gives it."""
    return AggregatorSettings(public_min_level="street").public_min_level


def _counts(body: dict[str, Any], metric: str) -> dict[str, int | None]:
    rows = [body, *body["children"]]
    return {row["code"]: row["figures"][metric]["value"] for row in rows}


async def test_small_counts_and_the_one_that_would_give_them_away_are_suppressed(
    public: httpx.AsyncClient,
) -> None:
    answer = await public.get(f"/v1/public/units/{DISTRICT}/summary", params={"date": str(DAY)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["threshold"], body["date"]) == (5, str(DAY))
    confirmed = _counts(body, "new_confirmed")
    assert confirmed[DISTRICT] == 15
    assert confirmed[STREET_1] is None, "2 cases: a small count"
    assert confirmed[STREET_3] is None, "6 cases, hidden so that 15 − 7 − 0 … gives nothing"
    assert confirmed[STREET_2] == 7
    shown = [v for code, v in confirmed.items() if code != DISTRICT and v is not None]
    assert 15 - sum(shown) >= 5, "what is hidden adds up to no small count"
    street_1 = body["children"][0]
    assert street_1["figures"]["new_confirmed"] == {"value": None, "suppressed": True}
    assert street_1["figures"]["fevers"] == {"value": None, "suppressed": True}
    assert street_1["figures"]["screenings"] == {"value": 20, "suppressed": False}
    assert street_1["figures"]["new_asymptomatic"] == {"value": 0, "suppressed": False}
    assert street_1["figures"]["risk_level"] == "medium_or_high", "medium would bound it"
    for stock in ("cumulative_confirmed", "current_confirmed"):
        assert street_1["figures"][stock] == {"value": None, "suppressed": True}
        assert _row(body, STREET_2)["figures"][stock] == {"value": 7, "suppressed": False}
    assert _row(body, STREET_2)["figures"]["risk_level"] == "medium"
    assert body["figures"]["days_without_new_case"] == 0


async def test_every_summary_shows_the_same_decision(public: httpx.AsyncClient) -> None:
    on = {"date": str(DAY)}
    district = (await public.get(f"/v1/public/units/{DISTRICT}/summary", params=on)).json()
    city = (await public.get(f"/v1/public/units/{CITY}/summary", params=on)).json()
    for street in (STREET_1, STREET_2, STREET_3):
        own = (await public.get(f"/v1/public/units/{street}/summary", params=on)).json()
        assert own["children"] == [], "communities are below the public level"
        assert own["figures"] == _row(district, street)["figures"]
    assert _row(city, DISTRICT)["figures"] == district["figures"]
    assert city["figures"]["new_confirmed"] == {"value": 15, "suppressed": False}


async def test_the_province_is_released_as_the_sum_of_its_cities(
    public: httpx.AsyncClient,
) -> None:
    on = {"date": str(DAY)}
    answer = await public.get(f"/v1/public/units/{PROVINCE}/summary", params=on)
    assert answer.status_code == 200, answer.text
    province = answer.json()
    city = (await public.get(f"/v1/public/units/{CITY}/summary", params=on)).json()
    assert [row["code"] for row in province["children"]] == [CITY], "one city in the sample"
    assert province["figures"] == city["figures"] == _row(province, CITY)["figures"]
    assert province["figures"][NEW_CONFIRMED] == {"value": 15, "suppressed": False}
    assert province["figures"]["fevers"]["suppressed"], "3 fevers: small at every level"
    for count in PUBLIC_COUNTS:
        districts = [row["figures"][count] for row in city["children"]]
        if not any(shown["suppressed"] for shown in districts):
            total = sum(shown["value"] for shown in districts)
            assert province["figures"][count]["value"] == total, count
    page = await public.get(f"/public/{PROVINCE}", params=on)
    assert page.status_code == 200, page.text
    assert "宁夏回族自治区" in page.text and f"/public/{CITY}'" in page.text


def test_a_parent_new_to_the_releases_starts_from_its_children() -> None:
    """A release chain started before the province was public: the province's first
    release counts what its city newly reports, not its whole history."""
    rules = ReleaseRules(5, risk_rule(AggregatorSettings()))
    city: dict[str, tuple[str, ...]] = {"6401": ("640104", "640106")}

    def figures(*units: str, a: int, b: int) -> dict[str, dict[str, int | str | None]]:
        values = {"640104": a, "640106": b, "6401": a + b, "64": a + b}
        return {
            u: {"cumulative_confirmed": values[u], "current_confirmed": values[u]} for u in units
        }

    first = make_release(DAY, figures("6401", "640104", "640106", a=2, b=9), city, None, rules)
    both = {**city, "64": ("6401",)}
    units = figures("64", "6401", "640104", "640106", a=2, b=15)
    second = make_release(DAY + timedelta(days=1), units, both, first.state, rules)
    assert second.units["6401"][NEW_CONFIRMED] == {"value": 6, "suppressed": False}
    assert second.units["64"][NEW_CONFIRMED] == second.units["6401"][NEW_CONFIRMED]
    for stock in ("cumulative_confirmed", "current_confirmed"):
        assert second.units["64"][stock] == {"value": 17, "suppressed": False}
        assert second.units["640104"][stock]["suppressed"], "its 2 was hidden before"


async def test_no_token_is_needed_and_communities_are_not_public(
    public: httpx.AsyncClient,
) -> None:
    community = await public.get(f"/v1/public/units/{STREET_1}001/summary")
    assert community.status_code == 404
    assert "public" in community.json()["detail"]
    assert (await public.get("/v1/public/units/640199/summary")).status_code == 404
    assert (await public.get("/v1/public/units/abc/summary")).status_code == 422
    await public.get(f"/v1/public/units/{DISTRICT}/summary", params={"date": str(DAY)})
    before = await public.get(
        f"/v1/public/units/{DISTRICT}/summary", params={"date": str(DAY - timedelta(days=1))}
    )
    assert before.status_code == 404, "releases start with the first one made"
    later = await public.get(f"/v1/public/units/{DISTRICT}/summary")
    assert _counts(later.json(), "new_confirmed")[DISTRICT] == 0, "nothing newly reported"
    assert _counts(later.json(), "cumulative_confirmed")[DISTRICT] == 15
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    ahead = await public.get(f"/v1/public/units/{DISTRICT}/summary", params={"date": str(tomorrow)})
    assert ahead.status_code == 404
    assert "released at" in ahead.json()["detail"]


def _row(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(row for row in body["children"] if row["code"] == code)


@pytest.mark.parametrize("bad", ["0", "101", "five"])
def test_the_threshold_setting_is_validated(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIBAO_SMALL_CELL_THRESHOLD", bad)
    with pytest.raises(ValidationError, match="small_cell_threshold"):
        AggregatorSettings()


def test_the_threshold_and_level_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AggregatorSettings().small_cell_threshold == 5
    monkeypatch.setenv("ZHIBAO_SMALL_CELL_THRESHOLD", "10")
    monkeypatch.setenv("ZHIBAO_PUBLIC_MIN_LEVEL", "street")
    settings = AggregatorSettings()
    assert (settings.small_cell_threshold, settings.public_min_level.value) == (10, "street")
    monkeypatch.setenv("ZHIBAO_PUBLIC_MIN_LEVEL", "building")
    with pytest.raises(ValidationError, match="public_min_level"):
        AggregatorSettings()


def test_the_release_time_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AggregatorSettings().public_release_after == timedelta(days=1, hours=10)
    monkeypatch.setenv("ZHIBAO_PUBLIC_RELEASE_AFTER", "P1DT8H30M")
    assert AggregatorSettings().public_release_after == timedelta(days=1, hours=8, minutes=30)
    monkeypatch.setenv("ZHIBAO_PUBLIC_RELEASE_AFTER", "-PT1H")
    with pytest.raises(ValidationError, match="public_release_after"):
        AggregatorSettings()


def test_a_day_is_released_the_next_day_at_ten_district_time(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    rules = ReleaseRules(5, risk_rule(settings))
    summaries = PublicSummaries(reader(settings, sqlite_engine), rules, min_level_street())
    before_ten = datetime(2020, 3, 20, 1, 59, 59, tzinfo=UTC)  # 09:59:59 in Yinchuan
    assert str(summaries.latest_released(before_ten)) == "2020-03-18"
    assert str(summaries.latest_released(before_ten + timedelta(seconds=1))) == "2020-03-19"
    assert summaries.released_at(date(2020, 3, 19)).isoformat() == "2020-03-20T10:00:00+08:00"


async def test_no_release_before_the_first_counted_day(public: httpx.AsyncClient) -> None:
    """A request for a day long ago makes no release chain from that day (bounded work)."""
    ancient = await public.get(
        f"/v1/public/units/{DISTRICT}/summary", params={"date": "2000-01-01"}
    )
    assert ancient.status_code == 404
    assert f"start on {DAY}" in ancient.json()["detail"]
    made = await public.get(f"/v1/public/units/{DISTRICT}/summary", params={"date": str(DAY)})
    assert made.status_code == 200
