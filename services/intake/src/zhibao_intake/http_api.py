"""HTTP entry point: ``POST /v1/events`` (one CloudEvent or a batch)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from zhibao_intake.domain.outcome import SubmissionResult
from zhibao_intake.submission import SubmissionRefused, SubmissionService, decode_items, http_status
from zhibao_shared.tokens import Role, Token, TokenStore, bearer_secret


def build_router(
    service: SubmissionService,
    tokens: TokenStore,
    *,
    max_body_bytes: int,
    max_items: int,
    retry_after_s: int,
) -> APIRouter:
    """The intake API, wired to its collaborators."""
    router = APIRouter(prefix="/v1", tags=["events"])

    def reporter_token(authorization: Annotated[str | None, Header()] = None) -> Token:
        secret = bearer_secret(authorization)
        token = tokens.authenticate(secret) if secret else None
        if token is None:
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        if not token.role.permits(Role.REPORT):
            raise HTTPException(403, f"a {token.role} token may not report events")
        return token

    @router.post(
        "/events",
        status_code=202,
        response_model=SubmissionResult,
        summary="Submit one CloudEvent or a batch",
        responses={
            207: {"model": SubmissionResult, "description": "Some events stored, some rejected"},
            400: {"description": "Body is not valid JSON / UTF-8"},
            401: {"description": "No or unknown token"},
            403: {"model": SubmissionResult, "description": "Events outside the token's scope"},
            413: {"description": "Body or batch too large"},
            415: {"description": "Unsupported content type"},
            422: {"model": SubmissionResult, "description": "Every event was rejected"},
            503: {"model": SubmissionResult, "description": "NATS unavailable; retry later"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {"schema": {"type": "object"}},
                    "application/cloudevents-batch+json": {
                        "schema": {"type": "array", "items": {"type": "object"}}
                    },
                    "application/json": {
                        "schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}
                    },
                },
            }
        },
    )
    async def post_events(
        request: Request, token: Annotated[Token, Depends(reporter_token)]
    ) -> JSONResponse:
        body = await read_limited(request, max_body_bytes)
        try:
            items = decode_items(body, request.headers.get("content-type"), max_items)
        except SubmissionRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        result = await service.submit(items, token)
        status = http_status(result)
        headers = {"Retry-After": str(retry_after_s)} if status == 503 else None
        return JSONResponse(result.model_dump(mode="json", exclude_none=True), status, headers)

    return router


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing with 413 once it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
