"""``GET /asyncapi.json``: the bus's AsyncAPI document, public like ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from zhibao_intake.domain.outcome import SubmissionResult
from zhibao_shared.asyncapi import asyncapi_document


@cache
def bus_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the bus, with intake's answer model."""
    return asyncapi_document(SubmissionResult)


def asyncapi_router() -> APIRouter:
    """A router serving the document (no token: it describes subjects, not data)."""
    router = APIRouter()

    @router.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> dict[str, Any]:
        return bus_document()

    return router
