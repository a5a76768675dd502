"""An epidemic point's registered places: from the ids it names, or from its labels as the
places registry matches them (pure: the registry is an in-memory index)."""

from __future__ import annotations

import re
from dataclasses import replace

from zhibao_aggregator.domain.points import Point
from zhibao_shared.places import PLACE_ID, Place, PlaceKind, Places

_PLACE_ID = re.compile(PLACE_ID)


def _registered(places: Places, label: str, kind: PlaceKind, community: str) -> Place | None:
    """The place a label names by its id, if it is one of ``kind`` in ``community``."""
    if not _PLACE_ID.match(label):
        return None
    place = places.get(label)
    if place is None or place.kind is not kind or place.community != community:
        return None
    return place


def resolve(point: Point, places: Places) -> Point:
    """``point`` with ``compound_id`` (and ``building_id`` when it names a building) set
    when it lies at a registered place; unchanged (labels only) otherwise. A building that
    matches nothing leaves the point unregistered rather than widening it to its compound."""
    unit = point.unit
    if point.building is not None:
        building = _registered(places, point.building, PlaceKind.BUILDING, unit)
        if building is not None:
            return replace(point, compound_id=building.compound, building_id=building.id)
    compound_label = point.compound
    if compound_label is not None:
        compound = _registered(places, compound_label, PlaceKind.COMPOUND, unit)
        if compound is not None and point.building is None:
            return replace(point, compound_id=compound.id)
        if compound is not None:
            compound_label = compound.name
    found = places.match(unit, compound=compound_label, building=point.building)
    if point.building is not None:
        if found.building is None:
            return point
        return replace(point, compound_id=found.compound, building_id=found.building)
    return point if found.compound is None else replace(point, compound_id=found.compound)
