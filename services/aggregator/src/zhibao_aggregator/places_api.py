"""``/v1/units/{community}/places``: figures per registered compound, grid or building
(read tokens covering the community; never public)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from zhibao_aggregator.http_api import DateQuery, readable
from zhibao_aggregator.place_reader import NotACommunity, PlaceReader
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.places import PlaceKind
from zhibao_shared.tokens import Role

KindQuery = Annotated[
    PlaceKind, Query(description="compound (小区), grid (网格) or building (楼栋)")
]


def build_places_router(places: PlaceReader, auth: TokenAuth) -> APIRouter:
    """The places route; the token's scope must cover the community (403 otherwise)."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["places"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token does not cover this unit"},
            404: {"description": "Unknown unit"},
            422: {"description": "Not a community, or a bad kind or date"},
        },
    )

    @router.get(
        "/{code}/places",
        summary="A community's registered compounds, grids or buildings with their figures",
    )
    async def listed(
        code: str, kind: KindQuery = PlaceKind.COMPOUND, date: DateQuery = None
    ) -> dict[str, Any]:
        today = places.rollups.calendar.today(datetime.now(UTC))
        day = today if date is None else readable(date, "date", today)
        try:
            return await places.places(code, kind, day)
        except NotACommunity:
            raise unprocessable(
                ("path", "code"), "places are registered below communities: not a community"
            ) from None

    return router
