"""The shipped sample hierarchy (Jinfeng-like district) and registry rules."""

from __future__ import annotations

import pytest

from zhibao_shared.hierarchy import Level, Registry, RegistryError, load_registry


def test_sample_district_matches_seed_figures() -> None:
    registry = load_registry()
    communities = registry.at_level(Level.COMMUNITY)
    assert len(registry.at_level(Level.STREET)) == 5
    assert len(communities) == 48
    assert sum(c.households or 0 for c in communities) == 279_000
    assert sum(c.population or 0 for c in communities) == 567_000
    assert sum(1 for c in communities if (c.households or 0) > 5000) == 29
    assert "640106001001" in registry


def test_navigation_by_prefix() -> None:
    registry = load_registry()
    assert [u.code for u in registry.path("640106001001")] == [
        "6401",
        "640106",
        "640106001",
        "640106001001",
    ]
    assert [u.code for u in registry.children("640106")] == [f"640106{i:03d}" for i in range(1, 6)]
    assert all(c.code.startswith("640106002") for c in registry.communities_under("640106002"))
    assert registry.is_community("640106001001")
    assert not registry.is_community("640106001")


def test_inconsistent_registry_is_refused() -> None:
    text = """
units:
  - {code: '6401', name: 市, level: city}
  - {code: '640106001001', name: 社区, level: community, parent: '640107001'}
"""
    with pytest.raises(RegistryError, match="parent"):
        Registry.from_yaml(text)
