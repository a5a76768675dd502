"""HTTP errors shaped as the OpenAPI specs promise (FastAPI's 422 body is a list)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException


def unprocessable(
    location: tuple[str, ...], message: str, rule: str = "value_error"
) -> HTTPException:
    """A 422 whose ``detail`` has FastAPI's validation-error shape, for checks done in code
    (``rule``, the error's ``type``, names the rule a client may act on)."""
    return HTTPException(422, [{"loc": list(location), "msg": message, "type": rule}])


def json_body(body: bytes) -> Any:
    """``body`` parsed as JSON, or a 400 saying why not (not UTF-8 or not JSON, nested
    too deeply, or an integer beyond Python's digit limit, which ``json`` raises as a
    plain ValueError): never a 500."""
    try:
        return json.loads(body)
    except RecursionError:
        raise HTTPException(400, "the body is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string ..."
        raise HTTPException(400, f"the body is not acceptable JSON: {exc}") from None
