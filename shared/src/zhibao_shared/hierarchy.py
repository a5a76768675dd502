"""The administrative hierarchy (统计用区划代码): units whose codes nest by prefix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Level(StrEnum):
    """A level of the hierarchy, from the top down."""

    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"


CODE_LENGTH: dict[Level, int] = {
    Level.PROVINCE: 2,
    Level.CITY: 4,
    Level.DISTRICT: 6,
    Level.STREET: 9,
    Level.COMMUNITY: 12,
}
#: the code lengths of the levels, from the top down (2, 4, 6, 9, 12)
CODE_LENGTHS: tuple[int, ...] = tuple(CODE_LENGTH.values())
LEVEL_OF_LENGTH: dict[int, Level] = {length: level for level, length in CODE_LENGTH.items()}
#: a unit code of any level (a prefix of its communities' codes)
UNIT_CODE = r"^\d{2}(\d{2}(\d{2}(\d{3}(\d{3})?)?)?)?$"
#: a code prefix of 2 to 12 digits (a query parameter naming a unit, known or not)
CODE_PREFIX = r"^\d{2,12}$"


def level_of(code: str) -> Level | None:
    """The level a code of this length names (None for a length no level has)."""
    return LEVEL_OF_LENGTH.get(len(code))


def lineage(code: str) -> tuple[str, ...]:
    """``code`` and the codes above it, from the top (province) down: ``64``, ``6401`` ..."""
    return tuple(code[:n] for n in CODE_LENGTHS if n <= len(code))


def ancestors(code: str) -> tuple[str, ...]:
    """``code`` and the codes above it, nearest first (codes nest by prefix)."""
    return lineage(code)[::-1]


def unit_at(code: str, level: Level) -> str:
    """The code of ``code``'s ancestor (or itself) at ``level``: its prefix."""
    return code[: CODE_LENGTH[level]]


def child_length(code: str) -> int | None:
    """The code length of the level below ``code``'s (None below communities)."""
    longer = [n for n in CODE_LENGTHS if n > len(code)]
    return longer[0] if longer else None


class Unit(BaseModel):
    """One administrative unit as listed in the registry file."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=UNIT_CODE)
    name: str
    name_en: str = ""
    level: Level
    parent: str | None = None
    households: int | None = Field(default=None, ge=0)
    population: int | None = Field(default=None, ge=0)


class RegistryError(ValueError):
    """The registry file is inconsistent (bad nesting, duplicates, orphans)."""


class Registry:
    """All units by code, with parent/child navigation.

    Every lookup is a dict access: the units by level and the communities under every
    unit are indexed once when the registry is built, so a whole province (tens of
    thousands of units) costs nothing per lookup on a hot path.
    """

    def __init__(self, units: list[Unit]) -> None:
        self._units: dict[str, Unit] = {}
        self._children: dict[str, list[str]] = {}
        self._by_level: dict[Level, list[Unit]] = {level: [] for level in Level}
        self._communities: dict[str, list[Unit]] = {}
        for unit in units:
            self._add(unit)
        self._check_parents()
        self._index_communities()

    def _add(self, unit: Unit) -> None:
        if unit.code in self._units:
            raise RegistryError(f"unit {unit.code} is listed twice")
        if len(unit.code) != CODE_LENGTH[unit.level]:
            raise RegistryError(
                f"unit {unit.code}: a {unit.level} code has {CODE_LENGTH[unit.level]} digits"
            )
        self._units[unit.code] = unit
        self._children.setdefault(unit.code, [])
        self._by_level[unit.level].append(unit)

    def _check_parents(self) -> None:
        for unit in self._units.values():
            if unit.parent is None:
                continue
            if unit.parent not in self._units or not unit.code.startswith(unit.parent):
                raise RegistryError(
                    f"unit {unit.code}: parent {unit.parent} is missing or not its prefix"
                )
            self._children[unit.parent].append(unit.code)

    def _index_communities(self) -> None:
        for community in self._by_level[Level.COMMUNITY]:
            for code in lineage(community.code):
                if code in self._units:
                    self._communities.setdefault(code, []).append(community)

    @classmethod
    def from_yaml(cls, text: str) -> Registry:
        """Parse a registry document (`units:` list).

        A document written by :meth:`to_yaml` (JSON, which is also YAML) is read as JSON:
        a province of tens of thousands of units in well under a second, where a YAML
        parser takes several.
        """
        try:
            document = json.loads(_without_leading_comments(text))
        except ValueError:
            document = yaml.safe_load(text)
        return cls([Unit.model_validate(item) for item in document["units"]])

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def __len__(self) -> int:
        return len(self._units)

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
        """All units of one level, in registry order."""
        return list(self._by_level[level])

    def top(self) -> list[Unit]:
        """The units without a parent (the province, or the city of a registry without one)."""
        return [u for level in Level for u in self._by_level[level] if u.parent is None]

    def communities_under(self, code: str) -> list[Unit]:
        """All communities whose code starts with `code` (the unit itself if a community).

        Indexed for every registered unit; any other prefix is answered by a scan.
        """
        if code in self._units:
            return list(self._communities.get(code, []))
        return [u for u in self._by_level[Level.COMMUNITY] if u.code.startswith(code)]

    def count_communities_under(self, code: str) -> int:
        """How many communities lie under a registered unit (0 for an unknown code)."""
        return len(self._communities.get(code, []))

    def is_community(self, code: str) -> bool:
        """True when `code` names a community in this registry."""
        unit = self._units.get(code)
        return unit is not None and unit.level is Level.COMMUNITY

    def to_yaml(self, header: str = "") -> str:
        """The registry document: comment lines, then JSON (valid YAML) one unit a line."""
        lines = [f"# {line}".rstrip() for line in header.splitlines()]
        units = [f"  {_unit_line(unit)}" for unit in self._units.values()]
        lines += ['{"units": [', ",\n".join(units), "]}"]
        return "\n".join(lines) + "\n"


def _unit_line(unit: Unit) -> str:
    fields: dict[str, object] = {"code": unit.code, "name": unit.name}
    if unit.name_en:
        fields["name_en"] = unit.name_en
    fields |= {"level": unit.level.value, "parent": unit.parent}
    if unit.households is not None:
        fields["households"] = unit.households
    if unit.population is not None:
        fields["population"] = unit.population
    return json.dumps(fields, ensure_ascii=False)


def _without_leading_comments(text: str) -> str:
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].startswith("#")):
        start += 1
    return "\n".join(lines[start:])


SAMPLE_REGISTRY = "yinchuan.yaml"


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
    return unit_at(community_code, Level.DISTRICT)
