"""HTTP errors shaped as the OpenAPI specs promise (FastAPI's 422 body is a list)."""

from __future__ import annotations

from fastapi import HTTPException


def unprocessable(location: tuple[str, ...], message: str) -> HTTPException:
    """A 422 whose ``detail`` has FastAPI's validation-error shape, for checks done in code."""
    return HTTPException(422, [{"loc": list(location), "msg": message, "type": "value_error"}])
