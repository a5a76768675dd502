"""The epidemic points' routes: ``/v1/points`` (thin: who may, then the desk)."""

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from zhibao_response.domain.playbook import Measure
from zhibao_response.domain.tasks import acting_level, at_or_above, scopes_above
from zhibao_response.domain.texts import Label, Reason
from zhibao_response.point_places import point_place
from zhibao_response.point_store import PointStore
from zhibao_response.points import PointDesk
from zhibao_response.store import Actor, Conflict
from zhibao_shared.audit import AuditTrail
from zhibao_shared.hierarchy import UNIT_CODE, Registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.places import Places
from zhibao_shared.tokens import Role, Token

POINT_ID = r"^[0-9a-f]{32}$"
#: How far from now a point's start may lie.
START_RANGE = timedelta(days=60)


class PointDeclaration(BaseModel):
    """An epidemic point declared by a command centre."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    unit: str = Field(pattern=r"^\d{12}$", description="The community the point lies in")
    compound: Label | None = None
    building: Label | None = None
    start: AwareDatetime | None = Field(default=None, description="Now when not given")
    measures: list[Measure] = Field(
        default_factory=list, max_length=50, description="Issued as tasks, like a playbook's"
    )
    reason: Reason

    @model_validator(mode="after")
    def _a_place(self) -> "PointDeclaration":
        if self.compound is None and self.building is None:
            raise ValueError("a point names a compound, a building or both")
        return self


class PointLifting(BaseModel):
    """Why a point is lifted."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Reason


def above(token: Token, unit: str) -> bool:
    """True when one of the token's scopes lies strictly above ``unit`` (a command centre)."""
    return bool(scopes_above(token.scopes, unit))


def build_points_router(
    desk: PointDesk,
    store: PointStore,
    registry: Registry,
    auth: TokenAuth,
    clock: Callable[[], datetime],
    announce: Callable[[], Awaitable[object]],
    audit: AuditTrail,
    places: Places | None = None,
) -> APIRouter:
    """``/v1/points``; declaring and lifting are appended to the audit trail, and answered
    once their messages are on the stream (``announce``). A point may name a registered
    compound or building by its id (``places``: the registry)."""
    router = APIRouter(
        prefix="/v1/points",
        tags=["points"],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token's role or units do not allow this"},
        },
    )
    operate = auth.require(Role.OPERATE)
    read = auth.require(Role.READ)

    def ensure_above(token: Token, unit: str) -> None:
        if not above(token, unit):
            raise HTTPException(
                403, f"epidemic points of {unit} are declared by a command centre above it"
            )

    @router.post("", status_code=201, summary="Declare an epidemic point (疫点)")
    async def declare(
        body: PointDeclaration, token: Annotated[Token, Depends(operate)]
    ) -> dict[str, Any]:
        ensure_above(token, body.unit)
        if not registry.is_community(body.unit):
            raise unprocessable(("body", "unit"), "not a community of the registry")
        now = clock()
        if body.start is not None and abs(body.start - now) > START_RANGE:
            raise unprocessable(("body", "start"), f"must lie within {START_RANGE.days} days")
        compound, building = body.compound, body.building
        if places is not None:
            compound, building = point_place(places, body.unit, compound, building)
        answer = await desk.declare(
            body.unit,
            compound,
            building,
            body.start,
            tuple(body.measures),
            body.reason,
            Actor.of(token),
            acting_level(token.scopes, body.unit) or body.unit,
        )
        audit.record(
            "point.declared",
            token,
            unit=body.unit,
            target=answer["id"],
            detail={"tasks_issued": len(answer["tasks_issued"])},
        )
        await announce()
        return answer

    @router.get("", summary="The epidemic points of a unit and the units below it")
    async def listed(
        token: Annotated[Token, Depends(read)],
        unit: Annotated[str, Query(pattern=UNIT_CODE)],
    ) -> dict[str, Any]:
        auth.ensure_scope(token, unit)
        return {"unit": unit, "points": await desk.listed(unit)}

    @router.post(
        "/{point_id}/lift",
        summary="Lift an epidemic point (closes its open tasks)",
        responses={404: {"description": "No such point"}, 409: {"description": "Lifted"}},
    )
    async def lift(
        point_id: Annotated[str, Path(pattern=POINT_ID)],
        body: PointLifting,
        token: Annotated[Token, Depends(operate)],
    ) -> dict[str, Any]:
        point = await store.get(point_id)
        if point is None or not token.covers(point.unit):
            raise HTTPException(404, "no such point")
        ensure_above(token, point.unit)
        if not at_or_above(token.scopes, point.unit, point.declared_scope):
            raise HTTPException(
                403,
                f"this point was declared by a command centre of {point.declared_scope}; "
                "only one at that level or above may lift it",
            )
        if point.lifted_at is not None:
            raise HTTPException(409, "the point is already lifted")
        try:
            answer = await desk.lift(point, body.reason, Actor.of(token))
        except Conflict:
            raise HTTPException(409, "the point is already lifted") from None
        audit.record(
            "point.lifted",
            token,
            unit=point.unit,
            target=point_id,
            detail={"tasks_closed": len(answer["tasks_closed"])},
        )
        await announce()
        return answer

    return router
