"""The administrative hierarchy (统计用区划代码): units whose codes nest by prefix."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Level(StrEnum):
    """A level of the hierarchy, from the top down."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"


CODE_LENGTH: dict[Level, int] = {
    Level.CITY: 4,
    Level.DISTRICT: 6,
    Level.STREET: 9,
    Level.COMMUNITY: 12,
}


class Unit(BaseModel):
    """One administrative unit as listed in the registry file."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=r"^\d{4}(\d{2}(\d{3}(\d{3})?)?)?$")
    name: str
    name_en: str = ""
    level: Level
    parent: str | None = None
    households: int | None = Field(default=None, ge=0)
    population: int | None = Field(default=None, ge=0)


class RegistryError(ValueError):
    """The registry file is inconsistent (bad nesting, duplicates, orphans)."""


class Registry:
    """All units by code, with parent/child navigation."""

    def __init__(self, units: list[Unit]) -> None:
        self._units: dict[str, Unit] = {}
        self._children: dict[str, list[str]] = {}
        for unit in units:
            self._add(unit)
        self._check_parents()

    def _add(self, unit: Unit) -> None:
        if unit.code in self._units:
            raise RegistryError(f"unit {unit.code} is listed twice")
        if len(unit.code) != CODE_LENGTH[unit.level]:
            raise RegistryError(
                f"unit {unit.code}: a {unit.level} code has {CODE_LENGTH[unit.level]} digits"
            )
        self._units[unit.code] = unit
        self._children.setdefault(unit.code, [])

    def _check_parents(self) -> None:
        for unit in self._units.values():
            if unit.parent is None:
                continue
            if unit.parent not in self._units or not unit.code.startswith(unit.parent):
                raise RegistryError(
                    f"unit {unit.code}: parent {unit.parent} is missing or not its prefix"
                )
            self._children[unit.parent].append(unit.code)

    @classmethod
    def from_yaml(cls, text: str) -> Registry:
        """Parse a registry document (`units:` list)."""
        document = yaml.safe_load(text)
        return cls([Unit.model_validate(item) for item in document["units"]])

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def get(self, code: str) -> Unit | None:
        """The unit with this code, or None."""
        return self._units.get(code)

    def __getitem__(self, code: str) -> Unit:
        return self._units[code]

    def children(self, code: str) -> list[Unit]:
        """Direct children of a unit, in registry order."""
        return [self._units[c] for c in self._children.get(code, [])]

    def path(self, code: str) -> list[Unit]:
        """The unit and its ancestors, from the top of the hierarchy down."""
        chain: list[Unit] = []
        unit: Unit | None = self._units[code]
        while unit is not None:
            chain.append(unit)
            unit = self._units.get(unit.parent) if unit.parent else None
        return list(reversed(chain))

    def at_level(self, level: Level) -> list[Unit]:
        """All units of one level."""
        return [u for u in self._units.values() if u.level is level]

    def communities_under(self, code: str) -> list[Unit]:
        """All communities whose code starts with `code` (the unit itself if a community)."""
        return [u for u in self.at_level(Level.COMMUNITY) if u.code.startswith(code)]

    def is_community(self, code: str) -> bool:
        """True when `code` names a community in this registry."""
        unit = self._units.get(code)
        return unit is not None and unit.level is Level.COMMUNITY


SAMPLE_REGISTRY = "jinfeng.yaml"


@cache
def load_registry(path: Path | None = None) -> Registry:
    """Load a registry file once per process; the shipped sample when no path is given."""
    if path is None:
        text = resources.files("zhibao_shared.data").joinpath(SAMPLE_REGISTRY).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return Registry.from_yaml(text)


def district_of(community_code: str) -> str:
    """The 6-digit district code of a community (or street) code."""
    return community_code[: CODE_LENGTH[Level.DISTRICT]]
