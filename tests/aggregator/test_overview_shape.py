"""The overview's shape: units parents first down to a depth, sizes summed up from the
communities where only they have one, and only the key figures a rollup has."""

from __future__ import annotations

from zhibao_aggregator.dashboard.overview import overview_json, subtree
from zhibao_shared.hierarchy import Level, Registry, Unit


def _registry() -> Registry:
    return Registry(
        [
            Unit(code="6401", name="银川市", level=Level.CITY),
            Unit(code="640106", name="金凤区", level=Level.DISTRICT, parent="6401"),
            Unit(code="640106001", name="甲街道", level=Level.STREET, parent="640106"),
            Unit(code="640106002", name="乙街道", level=Level.STREET, parent="640106"),
            Unit(
                code="640106001001",
                name="一社区",
                level=Level.COMMUNITY,
                parent="640106001",
                households=100,
                population=250,
            ),
            Unit(
                code="640106001002",
                name="二社区",
                level=Level.COMMUNITY,
                parent="640106001",
                households=40,
                population=None,
            ),
            Unit(code="640106002001", name="三社区", level=Level.COMMUNITY, parent="640106002"),
        ]
    )


def test_units_are_listed_parents_first_down_to_the_depth() -> None:
    registry = _registry()
    assert [u.code for u in subtree(registry, "640106", 1)] == [
        "640106",
        "640106001",
        "640106002",
    ]
    assert len(subtree(registry, "6401", 3)) == len(registry)
    assert [u.code for u in subtree(registry, "640106002001", 3)] == ["640106002001"]


def test_sizes_add_up_from_the_communities_and_absent_figures_stay_absent() -> None:
    registry = _registry()
    units = subtree(registry, "6401", 1)  # the city and its district: sizes still summed
    figures = {"6401": {"risk_level": "low", "screenings": 3, "reports_due_at": None}}
    rows = {row["code"]: row for row in overview_json(registry, units, figures)}
    assert rows["6401"]["population"] == 250
    assert rows["640106"]["households"] == 140
    assert rows["6401"]["figures"] == {"risk_level": "low", "screenings": 3}
    assert rows["640106"]["figures"] == {}
    street = overview_json(registry, subtree(registry, "640106002", 1), {})
    assert street[0]["population"] is None  # no community of it has a population
