"""Simulated residents: a stable, valid resident ID and a home (compound, building) each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from zhibao_shared.hierarchy import Unit
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
class Community:
    """A community of the registry as the simulator sees it."""

    index: int
    code: str
    name: str
    population: int
    households: int

    @classmethod
    def of(cls, index: int, unit: Unit) -> Community:
        """From a registry unit (defaults for units without figures)."""
        population = unit.population or 5000
        return cls(index, unit.code, unit.name, population, unit.households or population // 2)

    @property
    def buildings(self) -> int:
        """Residential buildings (about 80 households each)."""
        return max(1, self.households // _HOUSEHOLDS_PER_BUILDING)

    def compound_of(self, building: int) -> str:
        """The compound (小区) a building belongs to, e.g. 枫林湾2区."""
        short = self.name.removesuffix("社区") or self.code
        return f"{short}{building // _BUILDINGS_PER_COMPOUND + 1}区"

    def building_of(self, person: int) -> int:
        """The building a resident lives in."""
        return min(self.buildings - 1, person * self.buildings // self.population)

    def residents_of(self, building: int) -> range:
        """The residents of one building."""
        first = -(-building * self.population // self.buildings)
        last = -(-(building + 1) * self.population // self.buildings)
        return range(first, max(first + 1, last))

    def id_number(self, person: int) -> str:
        """The resident's ID number."""
        return resident_id(self.index, person, self.code[:6])

    def place(self, person: int) -> tuple[str, str]:
        """(compound, building label) of a resident's home."""
        building = self.building_of(person)
        return self.compound_of(building), str(building % _BUILDINGS_PER_COMPOUND + 1)
