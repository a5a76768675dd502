"""The shipped on-call sample covers the whole city: every community's unacknowledged
critical and warning alerts climb to its district's duty officer, the city's command
centre (6401) and last the province's (64), as the service pages them step by step."""

from __future__ import annotations

from datetime import UTC, datetime

from zhibao_alerts.config_files import Watched
from zhibao_alerts.domain.config import GRID_STEP, OnCall, Severity
from zhibao_shared.hierarchy import Level, load_registry, unit_at

AT = datetime(2026, 3, 4, 12, tzinfo=UTC)


def paged(oncall: OnCall, community: str, severity: Severity) -> list[set[str]]:
    """Who each unit step pages for an alert of ``community`` (as raising.py asks).

    The grid step is left out: it pages the grid's worker from the places registry, and
    only for alerts about a place in a grid.
    """
    return [
        {p.name for p in oncall.people_for(unit_at(community, step.level), AT)}
        for step in oncall.escalation[severity].steps
        if step.level != GRID_STEP
    ]


def test_every_community_escalates_to_its_district_the_city_and_the_province() -> None:
    oncall = Watched(OnCall, None, "oncall.yaml").current  # the sample, as the service loads it
    registry = load_registry()
    districts = {u.code: u.name for u in registry.at_level(Level.DISTRICT)}
    assert len(districts) == 6
    for community in registry.communities_under("6401"):
        for severity in (Severity.CRITICAL, Severity.WARNING):
            levels = [step.level for step in oncall.escalation[severity].steps]
            assert levels[-2:] == [Level.CITY, Level.PROVINCE]
            *_, district, city, province = paged(oncall, community.code, severity)
            assert district == {f"{districts[community.code[:6]]}疾控值班员"}, community
            assert city == {"银川市指挥中心值班员"}
            assert province == {"宁夏回族自治区指挥中心值班员"}
    own = {p.name for r in oncall.rotations if r.unit == "640106001001" for p in r.people}
    first = paged(oncall, "640106001001", Severity.CRITICAL)[0]
    assert own and first <= own, "a community's own rota is paged first"
