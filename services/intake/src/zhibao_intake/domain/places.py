"""The registered places a screening or case names (``data.place`` and the labels).

Pure: no I/O. :func:`registered_places` is the one function both submission paths
(HTTP and NATS) use, through :func:`~zhibao_intake.domain.admission.admit`.
"""

from __future__ import annotations

from typing import Any

from zhibao_intake.domain.outcome import FieldError
from zhibao_shared.events import CaseData, ReportedCorrection, ScreeningData
from zhibao_shared.places import Places, UnknownPlace

#: The published fields of the ids found, in the order of ``PlaceMatch``.
_ID_FIELDS = ("compound_id", "building_id", "grid_id")


def registered_places(reported: Any, places: Places) -> dict[str, str] | FieldError:
    """The ids to add to a screening's or case's published data (a correction's
    replacement data included): ``compound_id``, ``building_id``, ``grid_id`` where
    registered places are named, none for other events or unmatched labels.

    A ``place`` id that is not registered in the event's community is an error.
    """
    data, field = reported.data, "data.place"
    if isinstance(reported, ReportedCorrection):
        data, field = reported.data.data, "data.data.place"
    if not isinstance(data, ScreeningData | CaseData):
        return {}
    place, compound, building = data.place, data.compound, data.building
    grid = data.grid if isinstance(data, ScreeningData) else None
    if place is None and compound is None and building is None and grid is None:
        return {}
    try:
        found = places.locate(reported.subject, place, compound, building, grid)
    except UnknownPlace as error:
        return FieldError(field=field, message=str(error))
    return {name: value for name, value in zip(_ID_FIELDS, found, strict=True) if value}
