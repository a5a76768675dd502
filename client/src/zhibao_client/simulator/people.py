"""Simulated residents: a stable, valid resident ID and a home each.

A community with registered places (:mod:`zhibao_shared.places`) houses its residents
in its registered buildings, in proportion to their households; one without (a
registry of its own) in synthetic buildings of about 80 households.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from itertools import accumulate

from zhibao_shared.hierarchy import Unit
from zhibao_shared.places import Places
from zhibao_shared.resident_id import check_character

_BIRTH_ORIGIN = date(1940, 1, 1)
_BIRTH_SPAN_DAYS = 24_000  # births 1940 … 2005
_HOUSEHOLDS_PER_BUILDING = 80
_BUILDINGS_PER_COMPOUND = 12


def resident_id(community_index: int, person: int, region: str) -> str:
    """A valid 18-character ID, distinct for every (community, person) pair.

    Person numbers below 100,000 per community; the date of birth spreads
    the numbers over 65 years (37 is invertible modulo the span).
    """
    number = community_index * 100_000 + person
    born = _BIRTH_ORIGIN + timedelta(days=(number // 1000) * 37 % _BIRTH_SPAN_DAYS)
    first17 = f"{region}{born:%Y%m%d}{number % 1000:03d}"
    return first17 + check_character(first17)


@dataclass(frozen=True)
class Home:
    """A registered building residents live in, with its and its compound's labels."""

    building_id: str
    building: str  # its name, e.g. 3号楼
    compound: str  # its compound's name, e.g. 未来城
    households: int

    @property
    def compound_id(self) -> str:
        """The registered compound the building belongs to."""
        return self.building_id[:17]


def homes_of(places: Places, community: str) -> tuple[Home, ...]:
    """A community's registered buildings, in file order (empty: none registered)."""
    return tuple(
        Home(building.id, building.name, compound.name, max(1, building.households or 1))
        for compound in places.compounds(community)
        for building in places.buildings(compound.id)
    )


@dataclass(frozen=True)
class Community:
    """A community of the registry as the simulator sees it."""

    index: int
    code: str
    name: str
    population: int
    households: int
    homes: tuple[Home, ...] = ()

    @classmethod
    def of(cls, index: int, unit: Unit, places: Places | None = None) -> Community:
        """From a registry unit (defaults for units without figures), housed in its
        registered buildings when ``places`` has any."""
        population = unit.population or 5000
        homes = homes_of(places, unit.code) if places is not None else ()
        households = unit.households or population // 2
        return cls(index, unit.code, unit.name, population, households, homes)

    @cached_property
    def _bounds(self) -> tuple[int, ...]:
        """Cumulative households at the end of each registered building."""
        return tuple(accumulate(home.households for home in self.homes))

    @property
    def buildings(self) -> int:
        """Residential buildings: the registered ones, else about 80 households each."""
        if self.homes:
            return len(self.homes)
        return max(1, self.households // _HOUSEHOLDS_PER_BUILDING)

    def compound_of(self, building: int) -> str:
        """The compound (小区) a building belongs to, e.g. 未来城 (or 枫林湾2区)."""
        if self.homes:
            return self.homes[building].compound
        short = self.name.removesuffix("社区") or self.code
        return f"{short}{building // _BUILDINGS_PER_COMPOUND + 1}区"

    def building_of(self, person: int) -> int:
        """The building a resident lives in."""
        if self.homes:
            return bisect_right(self._bounds, person * self._bounds[-1] // self.population)
        return min(self.buildings - 1, person * self.buildings // self.population)

    def residents_of(self, building: int) -> range:
        """The residents of one building."""
        first, last = self._first_resident(building), self._first_resident(building + 1)
        return range(first, max(first + 1, last))

    def _first_resident(self, building: int) -> int:
        if not self.homes:
            return -(-building * self.population // self.buildings)
        below = self._bounds[building - 1] if building > 0 else 0
        return -(-below * self.population // self._bounds[-1])

    def id_number(self, person: int) -> str:
        """The resident's ID number."""
        return resident_id(self.index, person, self.code[:6])

    def home(self, person: int) -> Home | None:
        """The registered building a resident lives in (None: no places registered)."""
        return self.homes[self.building_of(person)] if self.homes else None

    def place(self, person: int) -> tuple[str, str]:
        """(compound, building) labels of a resident's home (e.g. 未来城, 3号楼; synthetic:
        枫林湾2区, 3)."""
        building = self.building_of(person)
        if self.homes:
            home = self.homes[building]
            return home.compound, home.building
        return self.compound_of(building), str(building % _BUILDINGS_PER_COMPOUND + 1)

    def address(self, person: int) -> str:
        """A resident's address as a person writes it (未来城 3号楼)."""
        compound, building = self.place(person)
        return f"{compound} {building}号楼" if building.isdigit() else f"{compound} {building}"
