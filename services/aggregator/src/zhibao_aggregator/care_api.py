"""``GET /v1/units/{community}/key-persons``: a community's key-person register (重点人群).

The register lists persons (pseudonyms, places, last contact, open needs), so only
the community's own tokens see it; above the community the rollups' ``key_persons``
gives the counts by category.
"""

# No `from __future__ import annotations`: FastAPI resolves the closures' dependency
# annotations at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from zhibao_aggregator.domain.care import may_see_register
from zhibao_aggregator.reader import RollupReader
from zhibao_shared.hierarchy import Level
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.tokens import Role, Token


def build_care_router(reader: RollupReader, auth: TokenAuth) -> APIRouter:
    """The register route (read tokens whose scope covers the community, like every unit
    route, and then only the community's own)."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["key persons"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "Not the community's own token (above it: rollup counts only)"},
            404: {"description": "Unknown unit"},
            422: {"description": "Not a community: registers are kept per community"},
        },
    )
    reader_token = auth.require(Role.READ)

    @router.get(
        "/{code}/key-persons",
        summary="A community's key-person register: its own tokens only",
    )
    async def key_persons(
        code: str, token: Annotated[Token, Depends(reader_token)]
    ) -> dict[str, Any]:
        if reader.unit(code).level is not Level.COMMUNITY:
            raise unprocessable(
                ("path", "code"),
                "registers are kept per community; above a community the rollup's "
                "key_persons gives the counts",
            )
        if not may_see_register(token.scopes, code):
            raise HTTPException(
                403,
                f"the register of {code} lists persons: only the community's own tokens "
                "see it; the rollup's key_persons gives the counts",
            )
        return await reader.key_persons(code)

    return router
