"""The shipped sample hierarchy (the whole of Yinchuan under Ningxia) and registry rules."""

from __future__ import annotations

from importlib import resources

import pytest

from zhibao_cli.sample_city import HEADER, yinchuan
from zhibao_shared.hierarchy import (
    Level,
    Registry,
    RegistryError,
    ancestors,
    level_of,
    lineage,
    load_registry,
)

JINFENG = "640106"
BEIJING_ROAD = "640106002"  # 北京中路街道
CHANGCHENG_ROAD = "640106004"  # 长城中路街道


def _sizes(registry: Registry, code: str) -> tuple[int, int, int]:
    communities = registry.communities_under(code)
    return (
        len(communities),
        sum(c.households or 0 for c in communities),
        sum(c.population or 0 for c in communities),
    )


def test_the_sample_is_the_whole_of_yinchuan_under_ningxia() -> None:
    registry = load_registry()
    assert [u.code for u in registry.top()] == ["64"]
    assert registry["64"].level is Level.PROVINCE
    assert [u.code for u in registry.children("64")] == ["6401"]
    assert [(u.code, u.name) for u in registry.children("6401")] == [
        ("640104", "兴庆区"),
        ("640105", "西夏区"),
        ("640106", "金凤区"),
        ("640121", "永宁县"),
        ("640122", "贺兰县"),
        ("640181", "灵武市"),
    ]
    for district in registry.children("6401"):
        streets = registry.children(district.code)
        assert streets, district.name
        assert all(registry.children(s.code) for s in streets), district.name
    assert len(registry.at_level(Level.COMMUNITY)) > 300
    for community in registry.at_level(Level.COMMUNITY):
        assert community.households and community.population
        assert 1.5 <= community.population / community.households <= 4.0, community.code


def test_jinfeng_matches_seed_004() -> None:
    registry = load_registry()
    communities = registry.communities_under(JINFENG)
    assert len(registry.children(JINFENG)) == 5
    assert len(communities) == 48
    assert _sizes(registry, JINFENG)[1:] == (279_000, 567_000)
    assert sum(1 for c in communities if (c.households or 0) > 5000) == 29
    big, small = _sizes(registry, CHANGCHENG_ROAD), _sizes(registry, BEIJING_ROAD)
    assert registry[CHANGCHENG_ROAD].name == "长城中路街道"
    assert registry[BEIJING_ROAD].name == "北京中路街道"
    assert [round(b / s, 1) for b, s in zip(big, small, strict=True)] == [2.3, 6.7, 4.2]
    assert 95_000 <= big[1] <= 105_000 and 185_000 <= big[2] < 200_000
    wulishuixiang = [c for c in registry.children(CHANGCHENG_ROAD) if c.name == "五里水乡社区"]
    assert [(c.households, c.population) for c in wulishuixiang] == [(12_640, 35_340)]
    assert round(35_340 / small[2], 2) == 0.77  # "77% of 北京中路街道's population"
    street_sizes = [_sizes(registry, s.code)[1] for s in registry.children(JINFENG)]
    assert max(street_sizes) == big[1]


def test_the_shipped_file_is_the_generators_output() -> None:
    shipped = resources.files("zhibao_shared.data").joinpath("yinchuan.yaml").read_text("utf-8")
    assert shipped == yinchuan().to_yaml(HEADER)


def test_navigation_by_prefix() -> None:
    registry = load_registry()
    assert [u.code for u in registry.path("640106001001")] == [
        "64",
        "6401",
        "640106",
        "640106001",
        "640106001001",
    ]
    assert [u.code for u in registry.children("640106")] == [f"640106{i:03d}" for i in range(1, 6)]
    assert all(c.code.startswith("640106002") for c in registry.communities_under("640106002"))
    assert registry.count_communities_under("64") == len(registry.at_level(Level.COMMUNITY))
    assert registry.count_communities_under("640106") == 48
    assert registry.is_community("640106001001")
    assert not registry.is_community("640106001")


def test_codes_name_their_level_and_ancestors() -> None:
    assert [level_of(c) for c in ("64", "6401", "640106", "640106001", "640106001001")] == [
        Level.PROVINCE,
        Level.CITY,
        Level.DISTRICT,
        Level.STREET,
        Level.COMMUNITY,
    ]
    assert level_of("640") is None
    assert lineage("640106001001") == ("64", "6401", "640106", "640106001", "640106001001")
    assert ancestors("640106001") == ("640106001", "640106", "6401", "64")


def test_a_registry_may_start_at_the_city() -> None:
    registry = Registry.from_yaml(
        "units:\n  - {code: '6401', name: 市, level: city}\n"
        "  - {code: '640106', name: 区, level: district, parent: '6401'}\n"
    )
    assert [u.code for u in registry.top()] == ["6401"]


def test_inconsistent_registry_is_refused() -> None:
    text = """
units:
  - {code: '6401', name: 市, level: city}
  - {code: '640106001001', name: 社区, level: community, parent: '640107001'}
"""
    with pytest.raises(RegistryError, match="parent"):
        Registry.from_yaml(text)


def test_a_code_of_the_wrong_length_for_its_level_is_refused() -> None:
    with pytest.raises(RegistryError, match="province code has 2 digits"):
        Registry.from_yaml("units:\n  - {code: '6401', name: 省, level: province}\n")
