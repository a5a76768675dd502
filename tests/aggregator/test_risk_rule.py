"""Risk zoning by the national rule of February 2020 (the default) at its boundaries, and
the old "new cases in 14 days" rule as a configuration."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.clock import earlier_today
from zhibao_aggregator.bootstrap import reader, risk_rule, rules
from zhibao_aggregator.domain.risk import NationalRule2020, RiskInputs, RiskLevel, RiskRule
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import PublishedCase

ZONE = ZoneInfo("Asia/Shanghai")
COMMUNITY, OTHER = "640106001001", "640106001002"
STREET, DISTRICT = "640106001", "640106"
TODAY = datetime.now(UTC).astimezone(ZONE).date()
_ids = itertools.count(1)


def _at(day: date) -> datetime:
    """10:00 on ``day``; before 10:00 today, a minute ago but never before midnight (an
    event may not lie in the future). Always on ``day``, even when TODAY, computed as the
    module was collected, is the day before (a long run that crosses local midnight)."""
    ten = datetime.combine(day, time(10), tzinfo=ZONE)
    return ten if ten <= datetime.now(UTC) else earlier_today(timedelta(minutes=1))


def confirmed(day: date, community: str = COMMUNITY, **place: str) -> PublishedCase:
    """A new person reported confirmed on ``day`` (at a compound/building if given)."""
    n = next(_ids)
    when = _at(day)
    return PublishedCase.model_validate(
        {
            "specversion": "1.0",
            "id": f"case-{n}",
            "source": f"/{community}/his",
            "subject": community,
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


async def levels_on(
    engine: AsyncEngine, settings: AggregatorSettings, events: list[Any], day: date
) -> dict[str, Any]:
    """Apply the events, then each unit's risk level (and cluster flag) on ``day``."""
    async with engine.begin() as conn:
        await apply_batch(conn, [Delivery(e, "s", 1, 1) for e in events], rules(settings))
    read = reader(settings, engine)
    out: dict[str, Any] = {}
    for code in (COMMUNITY, STREET, DISTRICT):
        figures = await read.figures(code, day)
        out[code] = figures["risk_level"]
        out[f"{code} clusters"] = figures["clusters_in_risk_window"]
    return out


def test_the_default_rule_is_the_national_rule_of_2020() -> None:
    rule = risk_rule(AggregatorSettings(_env_file=None))
    assert rule == NationalRule2020(window_days=14, cumulative_above=50, cluster_min_cases=2)
    assert rule.assess(RiskInputs(0, 0, False)) is RiskLevel.LOW
    assert rule.assess(RiskInputs(0, 500, True)) is RiskLevel.LOW, "14 days without a case"
    assert rule.assess(RiskInputs(1, 50, True)) is RiskLevel.MEDIUM
    assert rule.assess(RiskInputs(1, 51, False)) is RiskLevel.MEDIUM
    assert rule.assess(RiskInputs(2, 51, True)) is RiskLevel.HIGH


@pytest.mark.parametrize(("earlier", "level"), [(48, "medium"), (49, "high")])
async def test_high_takes_more_than_50_cumulative_and_a_cluster(
    engine: AsyncEngine, settings: AggregatorSettings, earlier: int, level: str
) -> None:
    """Two persons confirmed in one compound this week, after ``earlier`` cases a month ago
    (each in a compound of its own): 50 cumulative is medium, 51 is high."""
    month_ago = TODAY - timedelta(days=30)
    events = [confirmed(month_ago, compound=f"小区{n}") for n in range(earlier)]
    events += [confirmed(TODAY - timedelta(days=d), compound="枫林湾一期") for d in (1, 3)]
    found = await levels_on(engine, settings, events, TODAY)
    assert found[COMMUNITY] == found[STREET] == found[DISTRICT] == level
    assert found[f"{DISTRICT} clusters"] == 1


async def test_without_a_cluster_more_than_50_stays_medium(
    engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """60 cases, but no two in one place within 14 days: different compounds, the same
    compound label in another community, a pair 20 days apart, cases without a place."""
    events = [confirmed(TODAY - timedelta(days=30), compound=f"小区{n}") for n in range(55)]
    events += [
        confirmed(TODAY - timedelta(days=2), compound="枫林湾一期"),
        confirmed(TODAY - timedelta(days=2), OTHER, compound="枫林湾一期"),
        confirmed(TODAY - timedelta(days=20), compound="未来城"),
        confirmed(TODAY - timedelta(days=1), compound="未来城"),
        confirmed(TODAY - timedelta(days=1)),
    ]
    found = await levels_on(engine, settings, events, TODAY)
    assert found[DISTRICT] == "medium"
    assert found[f"{DISTRICT} clusters"] == 0


async def test_a_building_without_a_compound_is_a_place_too(
    engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    events = [confirmed(TODAY - timedelta(days=30), compound=f"小区{n}") for n in range(50)]
    events += [confirmed(TODAY - timedelta(days=d), building="3号楼") for d in (0, 5)]
    found = await levels_on(engine, settings, events, TODAY)
    assert found[DISTRICT] == "high"
    assert found[f"{COMMUNITY} clusters"] == 1


async def test_low_again_after_14_days_without_a_new_case(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """A case on day D counts on days D to D + 13 (14 days, D included); D + 14 is low."""
    case_day = TODAY - timedelta(days=20)
    async with sqlite_engine.begin() as conn:
        await apply_batch(conn, [Delivery(confirmed(case_day), "s", 1, 1)], rules(settings))
    read = reader(settings, sqlite_engine)
    day_13 = await read.figures(COMMUNITY, case_day + timedelta(days=13))
    day_14 = await read.figures(COMMUNITY, case_day + timedelta(days=14))
    assert (day_13["risk_level"], day_13["days_since_last_new_confirmed"]) == ("medium", 13)
    assert (day_14["risk_level"], day_14["days_since_last_new_confirmed"]) == ("low", 14)
    assert day_14["cumulative_confirmed"] == 1, "cumulative 1, yet low: no new case in 14 days"


async def test_the_old_rule_is_a_configuration(sqlite_engine: AsyncEngine, tmp_path: Any) -> None:
    """ZHIBAO_RISK_RULE=new_cases: high from 10 new confirmed in the window, clusters or not."""
    settings = AggregatorSettings(data_dir=tmp_path / "data", risk_rule="new_cases", _env_file=None)
    assert risk_rule(settings) == RiskRule(14, 1, 10)
    events = [confirmed(TODAY - timedelta(days=1), compound=f"小区{n}") for n in range(9)]
    found = await levels_on(sqlite_engine, settings, events, TODAY)
    assert found[COMMUNITY] == "medium", "9 new cases, no cluster"
    found = await levels_on(sqlite_engine, settings, [confirmed(TODAY)], TODAY)
    assert found[COMMUNITY] == "high", "the 10th"


def test_settings_refuse_an_unknown_rule_and_a_cluster_of_one() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="risk_rule"):
        AggregatorSettings(risk_rule="county_2022", _env_file=None)
    with pytest.raises(ValidationError, match="risk_cluster_min_cases"):
        AggregatorSettings(risk_cluster_min_cases=1, _env_file=None)
