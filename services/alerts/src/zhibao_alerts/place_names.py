"""How alerts name registered places, and the grid a place lies in (the places registry)."""

from __future__ import annotations

from zhibao_alerts.domain.care import Where
from zhibao_shared.places import PlaceKind, Places


def place_name(places: Places | None, key: str) -> str:
    """A fever place's name as alerts say it: a registered building as "枫林湾 3号楼", a
    registered compound by its name, anything else (labels) as it is keyed."""
    place = places.get(key) if places is not None else None
    if place is None:
        return key
    if place.kind is PlaceKind.BUILDING and place.compound is not None:
        compound = places.get(place.compound) if places is not None else None
        return f"{compound.name} {place.name}" if compound is not None else place.name
    return place.name


def grid_of(places: Places | None, key: str | None) -> str | None:
    """The registered grid a place (building or grid id) lies in; None for a compound,
    labels, or a building without a grid."""
    place = places.get(key) if places is not None and key else None
    if place is None:
        return None
    if place.kind is PlaceKind.GRID:
        return place.id
    return place.grid if place.kind is PlaceKind.BUILDING else None


def home_name(places: Places | None, where: Where) -> str:
    """Where a person lives, as alerts say it: the registered building or compound by
    name, else the labels as reported (empty when unknown)."""
    for key in (where.building_id, where.compound_id):
        if key and places is not None and places.get(key) is not None:
            return place_name(places, key)
    return " ".join(label for label in (where.compound, where.building) if label)


def worker_of(places: Places | None, grid: str | None) -> str | None:
    """The grid worker's display name (staff: "网格员 王芳"), when the registry has one."""
    place = places.get(grid) if places is not None and grid else None
    return place.worker if place is not None else None
