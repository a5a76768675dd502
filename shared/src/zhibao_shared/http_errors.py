"""HTTP errors shaped as the OpenAPI specs promise (FastAPI's 422 body is a list)."""

from __future__ import annotations

from fastapi import HTTPException


def unprocessable(
    location: tuple[str, ...], message: str, rule: str = "value_error"
) -> HTTPException:
    """A 422 whose ``detail`` has FastAPI's validation-error shape, for checks done in code
    (``rule``, the error's ``type``, names the rule a client may act on)."""
    return HTTPException(422, [{"loc": list(location), "msg": message, "type": rule}])
