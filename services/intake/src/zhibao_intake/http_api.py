"""HTTP entry point: ``POST /v1/events`` (one CloudEvent or a batch)."""

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from zhibao_intake.audit import Caller
from zhibao_intake.domain.outcome import SubmissionResult
from zhibao_intake.gateway import Answer, Gateway
from zhibao_shared.events import reported_event_schema

_RESPONSES: dict[int | str, dict[str, object]] = {
    207: {"model": SubmissionResult, "description": "Some events stored, some rejected"},
    400: {"description": "Body is not valid JSON / UTF-8, or an empty batch"},
    401: {"description": "No or unknown token"},
    403: {"model": SubmissionResult, "description": "Events outside the token's scope"},
    413: {"description": "Body or batch too large"},
    415: {"description": "Unsupported content type"},
    422: {"model": SubmissionResult, "description": "Every event was rejected"},
    429: {"description": "Rate limit for this token exceeded; see Retry-After"},
    503: {"model": SubmissionResult, "description": "NATS unavailable; retry after Retry-After"},
}
_EVENT = {"$ref": "#/components/schemas/ReportedEvent"}
_BATCH = {"type": "array", "items": _EVENT, "minItems": 1}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/cloudevents+json": {"schema": _EVENT},
            "application/cloudevents-batch+json": {"schema": _BATCH},
            "application/json": {"schema": {"oneOf": [_EVENT, _BATCH]}},
        },
    }
}


def add_event_schemas(app: FastAPI) -> None:
    """Publish the reported-event JSON Schema in the app's OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        event = reported_event_schema("#/components/schemas/{model}")
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(event.pop("$defs"))
        components["ReportedEvent"] = event
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _response(answer: Answer) -> JSONResponse:
    headers = dict(answer.headers)
    if answer.retry_after is not None:
        headers["Retry-After"] = str(answer.retry_after)
    return JSONResponse(answer.body, answer.status, headers)


def build_router(gateway: Gateway) -> APIRouter:
    """The intake HTTP API."""
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.post(
        "/events",
        status_code=202,
        response_model=SubmissionResult,
        summary="Submit one CloudEvent or a batch",
        responses=_RESPONSES,
        openapi_extra=_BODY,
    )
    async def post_events(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        caller = Caller("http", request.client.host if request.client else None, None)
        token = await gateway.authenticate(authorization, caller)
        if isinstance(token, Answer):
            return _response(token)
        caller = Caller(caller.channel, caller.remote, token)
        body = await read_limited(request, gateway.limits.max_body_bytes)
        if body is None:
            return _response(await gateway.too_large(caller))
        return _response(await gateway.submit(caller, body, request.headers.get("content-type")))

    return router


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
