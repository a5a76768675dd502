"""``GET /v1/units/{code}/overview``: every unit under a unit in one answer (the page's map)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from zhibao_aggregator.dashboard.overview import (
    DEFAULT_DEPTH,
    MAX_DEPTH,
    overview_json,
    subtree,
)
from zhibao_aggregator.http_api import DateQuery, readable
from zhibao_aggregator.reader import RollupReader
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role

DepthQuery = Annotated[
    int,
    Query(ge=1, le=MAX_DEPTH, description="Levels below the unit listed (3: a city's communities)"),
]


def build_overview_router(reader: RollupReader, auth: TokenAuth) -> APIRouter:
    """The overview route; a read token whose scope covers the unit, like every unit route."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["rollups"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token does not cover this unit"},
            404: {"description": "Unknown unit"},
        },
    )

    @router.get(
        "/{code}/overview",
        summary="The unit and every unit below it: names, levels, sizes and key figures",
    )
    async def overview(
        code: str, date: DateQuery = None, depth: DepthQuery = DEFAULT_DEPTH
    ) -> dict[str, Any]:
        reader.unit(code)  # unknown units answer 404
        day = _day(reader, date)
        units = subtree(reader.registry, code, depth)
        figures = await reader.figures_of([u.code for u in units], day)
        return {
            "unit": code,
            "date": day.isoformat(),
            "depth": depth,
            "units": overview_json(reader.registry, units, figures),
        }

    return router


def _day(reader: RollupReader, day: date | None) -> date:
    today = reader.calendar.today(datetime.now(UTC))
    return today if day is None else readable(day, "date", today)
