"""The places a point or a level declaration names: a registered compound or building
named by its id is checked against the places registry (a point's building brings its
compound); labels are kept as declared (the aggregator matches them to registered
places where they fit)."""

from __future__ import annotations

import re

from fastapi import HTTPException

from zhibao_shared.places import PLACE_ID, Place, PlaceKind, Places

_PLACE_ID = re.compile(PLACE_ID)


def unknown_place(field: str, message: str) -> HTTPException:
    """A 422 with the code ``unknown_place`` (as intake's for events), at ``body.<field>``."""
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "unknown_place"}])


def _registered(places: Places, unit: str, field: str, value: str, kind: PlaceKind) -> Place:
    place = places.get(value)
    if place is None or place.community != unit or place.kind is not kind:
        raise unknown_place(field, f"{value} is not a registered {kind.value} of community {unit}")
    return place


def level_compounds(places: Places, unit: str, compounds: tuple[str, ...]) -> None:
    """Refuse a compound id that is not a registered compound of ``unit``."""
    for compound in compounds:
        if _PLACE_ID.match(compound):
            _registered(places, unit, "compounds", compound, PlaceKind.COMPOUND)


def point_place(
    places: Places, unit: str, compound: str | None, building: str | None
) -> tuple[str | None, str | None]:
    """The point's (compound, building): ids checked, a building id's compound added."""
    if compound is not None and _PLACE_ID.match(compound):
        _registered(places, unit, "compound", compound, PlaceKind.COMPOUND)
    if building is None or not _PLACE_ID.match(building):
        return compound, building
    found = _registered(places, unit, "building", building, PlaceKind.BUILDING)
    if compound is None or compound == found.compound:
        return found.compound, building
    raise unknown_place("building", f"building {building} is not in compound {compound}")
