"""The community worker's page: a phone-sized view of a community's tasks, and its plumbing.

* ``GET /worker`` the page and ``GET /worker/static/...`` its assets (no
  external resources; the page talks to this origin only);
* ``GET /worker/me`` the communities of the caller's token (where the page
  starts) and the communities a task can be transferred to;
* ``POST /worker/results`` forwards one ``zhibao.task_result.v1`` CloudEvent
  to intake with the caller's own bearer token, and answers intake's answer.

Why a same-origin forwarder rather than the page posting to intake: intake is
the system's edge for every community system and device; opening it to
browsers would mean CORS there, configured per deployment, and a page that
needs two origins in its Content-Security-Policy. Through the forwarder the
page has one origin, and intake still does every check itself (the token,
its scope, the task's state): the forwarder adds no authority, it only
refuses anything that is not a task result, so it is no general relay.

None of these routes is in the published OpenAPI document (the page's private
plumbing, as the command centre's page is the aggregator's).
"""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from zhibao_shared.hierarchy import Level, Registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import json_body
from zhibao_shared.task_rules import transfer_leaves_district
from zhibao_shared.tokens import Role, Token

STATIC = Path(__file__).parent / "worker"
TASK_RESULT = "zhibao.task_result.v1"
#: A task result is small: an id, a few words and a note of at most 500 characters.
MAX_RESULT_BYTES = 16 * 1024
#: The page loads scripts, styles and data from its own origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PASSED_HEADERS = ("content-type", "retry-after")


@dataclass
class WorkerPage:
    """The page's server side: who may use it, the registry, and where intake is."""

    auth: TokenAuth
    registry: Registry
    intake_url: str
    forward_timeout_s: float = 10.0

    def router(self) -> APIRouter:
        """The routes (see the module docstring)."""
        return build_worker_router(self)

    def communities(self, token: Token) -> list[dict[str, str]]:
        """The communities the token is scoped to exactly (its own, not those below a street)."""
        return [self._unit(code) for code in token.scopes if self.registry.is_community(code)]

    def transfer_targets(self, token: Token) -> list[dict[str, str]]:
        """The communities the token's tasks may be transferred to: those in the districts
        of its own communities, and any its scopes cover (the rule of
        :func:`~zhibao_shared.task_rules.transfer_leaves_district`)."""
        own = [code for code in token.scopes if self.registry.is_community(code)]
        return [
            self._unit(u.code)
            for u in self.registry.at_level(Level.COMMUNITY)
            if token.covers(u.code)
            or any(not transfer_leaves_district(code, u.code) for code in own)
        ]

    def _unit(self, code: str) -> dict[str, str]:
        unit = self.registry[code]
        return {"code": code, "name": unit.name}

    async def forward(self, authorization: str, body: bytes) -> Response:
        """Post the event to intake as the caller; intake's answer, or 502 if unreachable."""
        try:
            async with httpx.AsyncClient(timeout=self.forward_timeout_s) as client:
                answer = await client.post(
                    f"{self.intake_url.rstrip('/')}/v1/events",
                    content=body,
                    headers={
                        "authorization": authorization,
                        "content-type": "application/cloudevents+json",
                        "accept": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"detail": f"intake is unreachable ({type(exc).__name__}); try again shortly"},
                status_code=502,
            )
        headers = {k: v for k, v in answer.headers.items() if k.lower() in _PASSED_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=headers)


def _static_file(path: str) -> Path:
    root = STATIC.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.name == "index.html":
        raise HTTPException(404, "no such file")
    return target


async def _result_body(request: Request) -> bytes:
    """The request's body if it is one task-result CloudEvent; 413/400/422 otherwise."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_RESULT_BYTES:
            raise HTTPException(413, f"a task result is at most {MAX_RESULT_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    event = json_body(body)
    if not isinstance(event, dict) or event.get("type") != TASK_RESULT:
        raise HTTPException(422, f"only one {TASK_RESULT} event is forwarded here")
    return body


def build_worker_router(page: WorkerPage) -> APIRouter:
    """The page, its assets, ``/worker/me`` and the result forwarder."""
    router = APIRouter(include_in_schema=False)
    reader = page.auth.require(Role.READ)

    @router.get("/worker")
    async def index() -> Response:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
        )

    @router.get("/worker/static/{path:path}")
    async def asset(path: str) -> Response:
        return FileResponse(_static_file(path), headers={"Cache-Control": "no-cache"})

    @router.get("/worker/me")
    async def me(token: Annotated[Token, Depends(reader)]) -> dict[str, Any]:
        return {
            "role": token.role.value,
            "name": token.name,
            "communities": page.communities(token),
            "transfer_to": page.transfer_targets(token),
        }

    @router.post("/worker/results")
    async def results(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "a report token is required", {"WWW-Authenticate": "Bearer"})
        return await page.forward(authorization, await _result_body(request))

    return router
