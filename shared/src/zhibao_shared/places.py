"""Registered places below the community: compounds (小区), grids (网格) and buildings (楼栋).

Ids are stable (assigned once, never reused) and name their community:

* compound ``<community12>-C<nnn>``
* grid ``<community12>-G<nnn>``
* building ``<community12>-C<nnn>-B<nnn>`` (a building belongs to one compound)

Events may name a place by id (``data.place``); free-text labels (``compound``,
``building``, ``grid``) are matched to a registered place where one fits
(:meth:`Places.match`). A place no label matches stays unregistered.

The places file is JSON lines, one place a line, after ``#`` comment lines; a line
holds only what its id does not say (kind, community and a building's compound follow
from the id), e.g. ``{"id": "640106001001-C001-B003", "name": "3号楼", "grid":
"640106001001-G002", "households": 96}``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from zhibao_shared.hierarchy import Registry

#: A registered place's id (compound, building or grid).
PLACE_ID = r"^\d{12}-(C\d{3}(-B\d{3})?|G\d{3})$"
COMPOUND_ID = r"^\d{12}-C\d{3}$"
GRID_ID = r"^\d{12}-G\d{3}$"
BUILDING_ID = r"^\d{12}-C\d{3}-B\d{3}$"
#: The shipped sample: the places of the whole of Yinchuan (see ``zhibao_cli.sample_city``).
SAMPLE_PLACES = "yinchuan-places.jsonl"
_PLACE_ID = re.compile(PLACE_ID)


class PlaceKind(StrEnum):
    """What a registered place is."""

    COMPOUND = "compound"
    GRID = "grid"
    BUILDING = "building"


def community_of(place_id: str) -> str:
    """The 12-digit community code a place id starts with."""
    return place_id[:12]


def kind_of(place_id: str) -> PlaceKind | None:
    """The kind of place an id names (None when it is not a place id)."""
    if not _PLACE_ID.match(place_id):
        return None
    if place_id[13] == "G":
        return PlaceKind.GRID
    return PlaceKind.BUILDING if len(place_id) > 17 else PlaceKind.COMPOUND


class Place(BaseModel):
    """One registered place. ``kind``, ``community`` and a building's ``compound`` may be
    left out when validating: they follow from the id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=PLACE_ID)
    kind: PlaceKind
    community: str = Field(pattern=r"^\d{12}$")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    aliases: tuple[str, ...] = ()
    households: int | None = Field(default=None, ge=0)
    population: int | None = Field(default=None, ge=0)
    compound: str | None = Field(default=None, description="A building's compound")
    grid: str | None = Field(default=None, pattern=GRID_ID, description="A building's grid")
    worker: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A grid's worker (staff display name, e.g. 网格员 王芳); never a resident",
    )

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            return value
        place_id = value["id"]
        kind = kind_of(place_id)
        if kind is None:
            return value  # the id's pattern reports it
        derived: dict[str, Any] = {"kind": kind, "community": community_of(place_id)}
        if kind is PlaceKind.BUILDING:
            derived["compound"] = place_id[:17]
        return derived | value

    @model_validator(mode="after")
    def _consistent(self) -> Place:
        if kind_of(self.id) is not self.kind:
            raise ValueError(f"{self.id} is not the id of a {self.kind}")
        if self.community != community_of(self.id):
            raise ValueError(f"{self.id} does not lie in community {self.community}")
        building = self.kind is PlaceKind.BUILDING
        if building and self.compound != self.id[:17]:
            raise ValueError(f"building {self.id} belongs to compound {self.id[:17]}")
        if not building and (self.compound is not None or self.grid is not None):
            raise ValueError(f"only a building names its compound and grid ({self.id})")
        if building and self.grid is not None and community_of(self.grid) != self.community:
            raise ValueError(f"building {self.id}: grid {self.grid} is in another community")
        if self.worker is not None and self.kind is not PlaceKind.GRID:
            raise ValueError(f"only a grid has a worker ({self.id})")
        return self


class PlaceMatch(NamedTuple):
    """The registered places an event names (ids; None: not registered or no match)."""

    compound: str | None = None
    building: str | None = None
    grid: str | None = None


class PlacesError(ValueError):
    """The places are inconsistent (duplicate ids or labels, orphan buildings)."""


class UnknownPlace(ValueError):
    """An event names a place id that is not registered in its community."""


# --- label normalisation -----------------------------------------------------------------

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_DIGITS |= {"五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUMERAL = r"[0-9]+|[零〇一二两三四五六七八九十百]+"
_BUILDING_NUMBER = re.compile(rf"^第?#?({_NUMERAL})(?:#楼|#|号楼|号|栋楼|栋|幢|座|楼|排)?$")
_GRID_NUMBER = re.compile(rf"^(?:第?({_NUMERAL})号?(?:网格|格)?|网格({_NUMERAL})号?)$")
_COMPOUND_SUFFIX = "小区"


@lru_cache(maxsize=65536)
def normalise(label: str) -> str:
    """A label as compared: NFKC (full-width letters, digits and spaces become ordinary
    ones), without whitespace, lower case."""
    return "".join(unicodedata.normalize("NFKC", label).split()).lower()


def chinese_number(text: str) -> int | None:
    """The value of a number in digits or Chinese numerals (三, 十二, 二十三, 一百零五)."""
    if text.isdigit():
        return int(text)
    total, digit = 0, None
    for char in text:
        if char in _DIGITS:
            if digit:  # 三三 is no number (a 零 between units is)
                return None
            digit = _DIGITS[char]
        elif char in "十百":
            total += (1 if digit is None else digit) * (10 if char == "十" else 100)
            digit = None
        else:
            return None
    return total + (digit or 0)


@lru_cache(maxsize=65536)
def compound_key(label: str) -> str:
    """How a compound label is compared: normalised, without a trailing 小区."""
    key = normalise(label)
    stem = key.removesuffix(_COMPOUND_SUFFIX)
    return stem or key


@lru_cache(maxsize=65536)
def building_key(label: str) -> str:
    """How a building label is compared: ``#<n>`` for a numbered building (3号楼, 3栋,
    三号楼, #3, 3排 …), else the normalised label."""
    key = normalise(label)
    found = _BUILDING_NUMBER.match(key)
    number = chinese_number(found.group(1)) if found else None
    return key if number is None else f"#{number}"


@lru_cache(maxsize=65536)
def grid_key(label: str) -> str:
    """How a grid label is compared: ``#<n>`` for a numbered grid (第3网格, 3网格, 网格3,
    三网格 …), else the normalised label."""
    key = normalise(label)
    found = _GRID_NUMBER.match(key)
    digits = (found.group(1) or found.group(2)) if found else None
    number = chinese_number(digits) if digits else None
    return key if number is None else f"#{number}"


# --- the registry -----------------------------------------------------------------------

#: What indexing needs of a place: id, name, aliases and (a building's) grid.
_Entry = tuple[str, str, tuple[str, ...], str | None]
_KEYS: dict[PlaceKind, Callable[[str], str]] = {
    PlaceKind.COMPOUND: compound_key,
    PlaceKind.GRID: grid_key,
    PlaceKind.BUILDING: building_key,
}


class Places:
    """All registered places, indexed once so that every lookup and match is O(1).

    Matching works on the indexes alone; :class:`Place` objects of a trusted file (the
    shipped sample) are only built when asked for, so loading a whole city is quick.
    """

    def __init__(self, places: Iterable[Place]) -> None:
        self._places: dict[str, Place | dict[str, Any]] = {}
        listed = list(places)
        for place in listed:
            self._add(place.id, place)
        self._build([(p.id, p.name, p.aliases, p.grid) for p in listed])

    @classmethod
    def _trusted(cls, rows: list[dict[str, Any]]) -> Places:
        """Places from rows known to be valid (the shipped sample, checked by its tests)."""
        places = cls.__new__(cls)
        places._places = {}
        for row in rows:
            places._add(row["id"], row)
        places._build(
            [(r["id"], r["name"], tuple(r.get("aliases", ())), r.get("grid")) for r in rows]
        )
        return places

    def _add(self, place_id: str, place: Place | dict[str, Any]) -> None:
        if place_id in self._places:
            raise PlacesError(f"place {place_id} is listed twice")
        self._places[place_id] = place

    def _build(self, entries: list[_Entry]) -> None:
        self._by_kind: dict[PlaceKind, dict[str, list[str]]] = {kind: {} for kind in PlaceKind}
        self._grid_of: dict[str, str] = {}
        self._labels: dict[tuple[str, str, str], str] = {}
        for place_id, name, aliases, grid in entries:
            kind = kind_of(place_id)
            assert kind is not None  # the id's pattern was checked
            scope = place_id[:17] if kind is PlaceKind.BUILDING else place_id[:12]
            if kind is PlaceKind.BUILDING:
                self._check_building(place_id, grid)
                if grid is not None:
                    self._grid_of[place_id] = grid
            self._by_kind[kind].setdefault(scope, []).append(place_id)
            self._label(kind, place_id, scope, (name, *aliases))

    def _check_building(self, place_id: str, grid: str | None) -> None:
        if place_id[:17] not in self._places:
            raise PlacesError(f"building {place_id}: its compound {place_id[:17]} is not listed")
        if grid is not None and grid not in self._places:
            raise PlacesError(f"building {place_id}: its grid {grid} is not listed")

    def _label(self, kind: PlaceKind, place_id: str, scope: str, labels: tuple[str, ...]) -> None:
        key = _KEYS[kind]
        for label in {key(label) for label in labels}:
            other = self._labels.setdefault((kind.value, scope, label), place_id)
            if other != place_id:
                raise PlacesError(
                    f"{kind} {place_id} and {other} both answer to the label {label!r} in {scope}"
                )

    def __contains__(self, place_id: object) -> bool:
        return place_id in self._places

    def __iter__(self) -> Iterator[Place]:
        return (self._made(place_id) for place_id in list(self._places))

    def __len__(self) -> int:
        return len(self._places)

    def _made(self, place_id: str) -> Place:
        found = self._places[place_id]
        if isinstance(found, Place):
            return found
        place = Place.model_construct(**_derived(found))
        self._places[place_id] = place
        return place

    def get(self, place_id: str) -> Place | None:
        """The place with this id, or None."""
        return self._made(place_id) if place_id in self._places else None

    def compounds(self, community: str) -> list[Place]:
        """The compounds of a community, in file order."""
        return self._list(PlaceKind.COMPOUND, community)

    def grids(self, community: str) -> list[Place]:
        """The grids of a community, in file order."""
        return self._list(PlaceKind.GRID, community)

    def buildings(self, compound_id: str) -> list[Place]:
        """The buildings of a compound, in file order."""
        return self._list(PlaceKind.BUILDING, compound_id)

    def _list(self, kind: PlaceKind, scope: str) -> list[Place]:
        return [self._made(place_id) for place_id in self._by_kind[kind].get(scope, ())]

    def grid_of(self, building_id: str) -> Place | None:
        """The grid a building lies in (None: unknown building or no grid registered)."""
        grid = self._grid_of.get(building_id)
        return self._made(grid) if grid is not None else None

    def communities(self) -> set[str]:
        """The communities with registered places."""
        return {place_id[:12] for place_id in self._places}

    def match(
        self,
        community: str,
        compound: str | None = None,
        building: str | None = None,
        grid: str | None = None,
    ) -> PlaceMatch:
        """The registered places free-text labels name in ``community``.

        A compound matches by name or alias (with or without 小区); a building by its
        number in any usual form (3号楼, 3栋, 3幢, 3号, #3, 三号楼, 3) or its name, within
        the matched compound (or the community's only compound when no compound is
        given); a grid by its name, alias or number. A matched building brings its
        compound and grid.
        """
        compound_id = self._compound_id(community, compound)
        if building is not None:
            if compound is None:
                only = self._by_kind[PlaceKind.COMPOUND].get(community, ())
                compound_id = only[0] if len(only) == 1 else None
            building_id = self._building_in(compound_id, building)
            if building_id is not None:
                return PlaceMatch(building_id[:17], building_id, self._grid_of.get(building_id))
        return PlaceMatch(compound_id, None, self._grid_id(community, grid))

    def locate(
        self,
        community: str,
        place: str | None = None,
        compound: str | None = None,
        building: str | None = None,
        grid: str | None = None,
    ) -> PlaceMatch:
        """The registered places an event names: its ``place`` id, completed by its labels.

        Raises :class:`UnknownPlace` when ``place`` is not a registered place of
        ``community``.
        """
        if place is None:
            return self.match(community, compound, building, grid)
        if place not in self._places:
            raise UnknownPlace(
                f"place {place} is not registered: no compound, building or grid has this id"
            )
        if place[:12] != community:
            raise UnknownPlace(
                f"place {place} lies in community {place[:12]}, not in the event's "
                f"community {community}"
            )
        kind = kind_of(place)
        if kind is PlaceKind.BUILDING:
            return PlaceMatch(place[:17], place, self._grid_of.get(place))
        if kind is PlaceKind.GRID:
            return self.match(community, compound, building, None)._replace(grid=place)
        named = self._building_in(place, building)
        if named is not None:
            return PlaceMatch(place, named, self._grid_of.get(named))
        return PlaceMatch(place, None, self._grid_id(community, grid))

    def _compound_id(self, community: str, label: str | None) -> str | None:
        if label is None:
            return None
        return self._labels.get(("compound", community, compound_key(label)))

    def _grid_id(self, community: str, label: str | None) -> str | None:
        if label is None:
            return None
        return self._labels.get(("grid", community, grid_key(label)))

    def _building_in(self, compound_id: str | None, label: str | None) -> str | None:
        if compound_id is None or label is None:
            return None
        return self._labels.get(("building", compound_id, building_key(label)))

    def verify(self, registry: Registry) -> None:
        """Refuse places whose community is not a community of ``registry``."""
        for community in sorted(self.communities()):
            if not registry.is_community(community):
                raise PlacesError(f"places name community {community}, not in the registry")

    @classmethod
    def from_lines(cls, text: str, origin: str = "places") -> Places:
        """Parse a places file (JSON lines after ``#`` comment lines), validating each place."""
        return cls(_parse_lines(text, origin))

    def to_lines(self, header: str = "") -> str:
        """The places file: comment lines, then one place a line (JSON)."""
        lines = [f"# {line}".rstrip() for line in header.splitlines()]
        lines += [place_line(place) for place in self]
        return "\n".join(lines) + "\n"


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    """A trusted row with what its id says (kind, community, a building's compound)."""
    place_id = row["id"]
    kind = kind_of(place_id)
    fields = dict(row, kind=kind, community=place_id[:12], aliases=tuple(row.get("aliases", ())))
    if kind is PlaceKind.BUILDING:
        fields["compound"] = place_id[:17]
    return fields


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line and not line.startswith("#")]


def _parse_lines(text: str, origin: str) -> Iterator[Place]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            yield Place.model_validate(json.loads(stripped))
        except (ValueError, ValidationError) as error:
            raise PlacesError(f"{origin} line {number}: {_first_error(error)}") from None


def _first_error(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(error)


def place_line(place: Place) -> str:
    """One place as a line of the places file (without what its id says)."""
    fields: dict[str, object] = {"id": place.id, "name": place.name}
    if place.aliases:
        fields["aliases"] = list(place.aliases)
    for key in ("households", "population", "grid", "worker"):
        value = getattr(place, key)
        if value is not None:
            fields[key] = value
    return json.dumps(fields, ensure_ascii=False)


@cache
def load_places(path: Path | None = None) -> Places:
    """Load a places file once per process; the shipped sample (all of Yinchuan) when no
    path is given."""
    if path is None:  # trusted: tests/shared/test_places.py checks it is the generator's output
        resource = resources.files("zhibao_shared.data").joinpath(SAMPLE_PLACES)
        return Places._trusted(_rows(resource.read_text("utf-8")))
    return Places.from_lines(path.read_text("utf-8"), str(path))
