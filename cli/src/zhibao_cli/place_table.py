"""A table of places below the community (CSV or XLSX) as a places file.

One row per place, a header row naming the columns (Chinese or English):

======================  ===========  ===================================================
column                  required     meaning
======================  ===========  ===================================================
编号 / id               no           the place's id (kept; assigned when empty)
社区 / community        unless id    the community: 12-digit code or registry name
类型 / kind             yes          小区/compound, 网格/grid or 楼栋/building
名称 / name             yes          e.g. 枫林湾, 第3网格, 3号楼
别名 / aliases          no           other names, separated by 、 or ;
所属小区 / compound     buildings    the building's compound: its id or name
所属网格 / grid         no           a building's grid: its id or name
网格员 / worker         no           a grid's worker (staff display name)
户数 / households       no           households (a whole number)
人口 / population       no           residents (a whole number)
======================  ===========  ===================================================

Ids are stable: a place without an id keeps the id it has in the previous places
file (same community, kind, name and, for a building, compound); a new place gets the
next number of its community (or compound), never one used before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from zhibao_cli.task_sheet import CommunityNames
from zhibao_shared.hierarchy import Registry
from zhibao_shared.places import (
    Place,
    PlaceKind,
    Places,
    PlacesError,
    building_key,
    community_of,
    compound_key,
    grid_key,
    kind_of,
    normalise,
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("编号", "id", "place_id"),
    "community": ("社区", "所属社区", "community"),
    "kind": ("类型", "kind"),
    "name": ("名称", "name"),
    "aliases": ("别名", "aliases"),
    "compound": ("所属小区", "小区", "compound"),
    "grid": ("所属网格", "网格", "grid"),
    "worker": ("网格员", "worker"),
    "households": ("户数", "households"),
    "population": ("人口", "人数", "population"),
}
KINDS: dict[str, PlaceKind] = {
    "小区": PlaceKind.COMPOUND,
    "compound": PlaceKind.COMPOUND,
    "网格": PlaceKind.GRID,
    "grid": PlaceKind.GRID,
    "楼栋": PlaceKind.BUILDING,
    "楼": PlaceKind.BUILDING,
    "building": PlaceKind.BUILDING,
}
_ALIAS_SEPARATORS = re.compile(r"[、;；]")


class RowError(ValueError):
    """One row cannot be a place."""


@dataclass
class Row:
    """One place as the table gives it (before ids are known)."""

    number: int
    cells: dict[str, str]
    community: str = ""
    kind: PlaceKind = PlaceKind.COMPOUND
    id: str | None = None

    def get(self, column: str) -> str:
        """A cell's text ('' when empty or absent)."""
        return self.cells.get(column, "")


@dataclass
class PlaceTable:
    """What a table gave: the places and the refused rows (row number, reason)."""

    places: Places | None = None
    bad_rows: list[tuple[int, str]] = field(default_factory=list)

    def counts(self) -> dict[PlaceKind, int]:
        """How many places of each kind."""
        counts = dict.fromkeys(PlaceKind, 0)
        for place in self.places or ():
            counts[place.kind] += 1
        return counts


def header_columns(header: Sequence[str]) -> dict[str, int]:
    """The known columns of a header row, by their meaning."""
    names = [normalise(cell) for cell in header]
    found: dict[str, int] = {}
    for meaning, candidates in COLUMNS.items():
        for candidate in candidates:
            if candidate in names:
                found[meaning] = names.index(candidate)
                break
    return found


def read_places(
    rows: Iterable[Sequence[str]], registry: Registry, previous: Places | None = None
) -> PlaceTable:
    """The places of a table (the first non-empty row is its header)."""
    result = PlaceTable()
    parsed = _rows(rows, registry, result)
    if parsed is None:
        return result
    builder = _Builder(previous or Places([]))
    for row in parsed:  # ids the table gives are never assigned to another row
        if row.id is not None:
            builder.reserve(row.id)
    places: list[Place] = []
    for kind in (PlaceKind.COMPOUND, PlaceKind.GRID, PlaceKind.BUILDING):
        for row in (r for r in parsed if r.kind is kind):
            try:
                places.append(builder.place(row))
            except RowError as error:
                result.bad_rows.append((row.number, str(error)))
    result.bad_rows.sort()
    if not result.bad_rows:
        try:
            result.places = Places(places)
        except PlacesError as error:
            result.bad_rows.append((0, str(error)))
    return result


def _rows(
    rows: Iterable[Sequence[str]], registry: Registry, result: PlaceTable
) -> list[Row] | None:
    columns: dict[str, int] | None = None
    names = CommunityNames(registry)
    parsed: list[Row] = []
    for number, cells in enumerate(rows, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if columns is None:
            columns = header_columns(cells)
            missing = [c for c in ("kind", "name") if c not in columns]
            if missing:
                result.bad_rows.append(
                    (number, f"the header names no {' or '.join(missing)} column")
                )
                return None
            continue
        row = Row(number, {m: cells[i].strip() for m, i in columns.items() if i < len(cells)})
        try:
            _identify(row, names)
        except RowError as error:
            result.bad_rows.append((number, str(error)))
            continue
        parsed.append(row)
    if columns is None:
        result.bad_rows.append((1, "the table is empty"))
        return None
    return parsed


def _identify(row: Row, names: CommunityNames) -> None:
    """The row's kind, community and id (when given), checked against each other."""
    kind = KINDS.get(normalise(row.get("kind")))
    if kind is None:
        raise RowError(f"kind {row.get('kind')!r} is not 小区, 网格 or 楼栋")
    row.kind = kind
    if not row.get("name"):
        raise RowError("the name is empty")
    place_id = row.get("id") or None
    text = row.get("community")
    if text:
        try:
            row.community = names.resolve(text)
        except ValueError as error:
            raise RowError(f"community {text!r}: {error}") from None
    elif place_id is None:
        raise RowError("names no community (give its code or name, or the place's id)")
    if place_id is not None:
        if kind_of(place_id) is not kind:
            raise RowError(f"id {place_id!r} is not the id of a {kind}")
        if row.community and community_of(place_id) != row.community:
            raise RowError(f"id {place_id} does not lie in community {row.community}")
        row.community = community_of(place_id)
        if not names.is_community(row.community):
            raise RowError(f"id {place_id}: community {row.community} is not in the registry")
        row.id = place_id


class _Builder:
    """Places from rows: ids kept, reused from the previous file or assigned."""

    def __init__(self, previous: Places) -> None:
        self._previous: dict[tuple[str, str, str], str] = {}
        self._last: dict[str, int] = {}  # highest number per id prefix, previous included
        self._rows: dict[str, int] = {}  # id → row that listed it
        self._labels: dict[tuple[str, str, str], str] = {}  # (kind, scope, key) → id
        for place in previous:
            scope = place.compound if place.kind is PlaceKind.BUILDING else place.community
            self._previous[(place.kind.value, scope or "", normalise(place.name))] = place.id
            self._count(place.id)

    def reserve(self, place_id: str) -> None:
        """Count an id the table gives, before any id is assigned."""
        self._count(place_id)

    def _count(self, place_id: str) -> None:
        prefix, number = place_id[:-3], int(place_id[-3:])
        self._last[prefix] = max(self._last.get(prefix, 0), number)

    def place(self, row: Row) -> Place:
        """The row's place (raises RowError saying why not)."""
        scope = self._scope(row)
        place_id = row.id or self._previous.get((row.kind.value, scope, normalise(row.get("name"))))
        if place_id is None:
            place_id = self._next(row, scope)
        if place_id in self._rows:
            raise RowError(f"id {place_id} is listed twice (row {self._rows[place_id]})")
        self._rows[place_id] = row.number
        self._count(place_id)
        self._remember(row, place_id, scope)
        return self._validated(row, place_id)

    def _scope(self, row: Row) -> str:
        """Where the row's name must be unique: its community, a building's compound."""
        if row.kind is not PlaceKind.BUILDING:
            return row.community
        text = row.get("compound")
        if not text and row.id is None:
            raise RowError("a building names its compound (所属小区)")
        found = self._find(PlaceKind.COMPOUND, row.community, text, compound_key) if text else None
        if text and found is None:
            raise RowError(f"compound {text!r} is not listed in community {row.community}")
        if row.id is None:
            assert found is not None
            return found
        if found is not None and found != row.id[:17]:
            raise RowError(f"id {row.id} is not a building of compound {found}")
        if row.id[:17] not in self._rows:
            raise RowError(f"the compound of {row.id} ({row.id[:17]}) is not listed")
        return row.id[:17]

    def _find(
        self, kind: PlaceKind, community: str, text: str, key: Callable[[str], str]
    ) -> str | None:
        if text in self._rows and kind_of(text) is kind and community_of(text) == community:
            return text
        return self._labels.get((kind.value, community, key(text)))

    def _next(self, row: Row, scope: str) -> str:
        prefix = (
            f"{scope}-B"
            if row.kind is PlaceKind.BUILDING
            else f"{scope}-{row.kind.value[0].upper()}"
        )
        number = self._last.get(prefix, 0) + 1
        if number > 999:
            raise RowError(f"{prefix}: no ids left (999 at most)")
        return f"{prefix}{number:03d}"

    def _remember(self, row: Row, place_id: str, scope: str) -> None:
        key = {
            PlaceKind.COMPOUND: compound_key,
            PlaceKind.GRID: grid_key,
            PlaceKind.BUILDING: building_key,
        }[row.kind]
        for label in (row.get("name"), *_aliases(row)):
            entry = (row.kind.value, scope, key(label))
            other = self._labels.setdefault(entry, place_id)
            if other != place_id:
                raise RowError(
                    f"{row.kind} {label!r} is listed twice in {scope} (row {self._rows[other]})"
                )

    def _validated(self, row: Row, place_id: str) -> Place:
        fields: dict[str, object] = {"id": place_id, "name": row.get("name")}
        fields["aliases"] = _aliases(row)
        for column in ("households", "population"):
            text = row.get(column).replace(",", "")
            if text:
                if not text.isdigit():
                    raise RowError(f"{column} {row.get(column)!r} is not a whole number")
                fields[column] = int(text)
        if row.get("worker"):
            if row.kind is not PlaceKind.GRID:
                raise RowError("only a grid has a worker (网格员)")
            fields["worker"] = row.get("worker")
        if row.kind is PlaceKind.BUILDING and row.get("grid"):
            text = row.get("grid")
            grid = self._find(PlaceKind.GRID, row.community, text, grid_key)
            if grid is None:
                raise RowError(f"grid {text!r} is not listed in community {row.community}")
            fields["grid"] = grid
        try:
            return Place.model_validate(fields)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RowError(f"{where}: {first['msg']}" if where else str(first["msg"])) from None


def _aliases(row: Row) -> tuple[str, ...]:
    return tuple(a.strip() for a in _ALIAS_SEPARATORS.split(row.get("aliases")) if a.strip())
