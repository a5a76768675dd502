"""The command-centre page's routes: the page, its assets, the live stream, the alert proxy.

Everything here is served by the aggregator so the page has one origin:

* ``GET /`` the page and ``GET /static/...`` its assets (ECharts vendored, no CDN);
* ``GET /v1/dashboard/me`` the caller's role and units (where the page starts);
* ``GET /v1/live`` server-sent events: changed rollups and alerts within the
  token's scope (``access_token`` query parameter, as EventSource cannot set
  headers; the only route that accepts it). The token is checked again every
  ``token_recheck_s`` seconds: a revoked or expired token's stream ends;
* ``/v1/alerts...`` a narrow proxy to the alerts service (list, one alert with
  its timeline, acknowledge, resolve), forwarding the caller's bearer token:
  the alerts service does its own authorisation.

None of these routes is part of the published OpenAPI document (they are the
page's private plumbing; the stream never ends, which API fuzzers dislike).
"""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from zhibao_aggregator.dashboard.hub import LiveHub, NatsSource, Watch, stream
from zhibao_shared.hierarchy import CODE_LENGTHS, CODE_PREFIX, Registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, Token

STATIC = Path(__file__).parent / "static"
AlertId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
#: The page loads scripts, styles and data from its own origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Dashboard:
    """The page's server side: a live hub and the alerts service's address."""

    hub: LiveHub
    auth: TokenAuth
    registry: Registry
    alerts_url: str | None = None
    heartbeat_s: float = 15.0
    proxy_timeout_s: float = 10.0
    token_recheck_s: float = 2.0

    @classmethod
    def create(
        cls,
        *,
        nats_url: str,
        auth: TokenAuth,
        registry: Registry,
        alerts_url: str | None,
        heartbeat_s: float = 15.0,
        queue_size: int = 256,
        token_recheck_s: float = 2.0,
    ) -> "Dashboard":
        """A dashboard with its own NATS subscription (connected on the first live client)."""
        hub = LiveHub(NatsSource(nats_url), queue_size=queue_size)
        alerts = alerts_url.rstrip("/") if alerts_url else None
        return cls(hub, auth, registry, alerts, heartbeat_s, token_recheck_s=token_recheck_s)

    def router(self) -> APIRouter:
        """The routes (see the module docstring)."""
        return build_dashboard_router(self)

    async def close(self) -> None:
        """End open streams and the NATS subscription (call from the app's lifespan)."""
        await self.hub.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _static_file(path: str) -> Path:
    root = STATIC.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, "no such file")
    return target


def _unit_json(registry: Registry, code: str) -> dict[str, Any]:
    unit = registry.get(code)
    if unit is None:
        return {"code": code, "name": code, "name_en": "", "level": None}
    return {"code": unit.code, "name": unit.name, "name_en": unit.name_en, "level": unit.level}


def build_dashboard_router(dashboard: Dashboard) -> APIRouter:
    """The page, its assets, ``/v1/live`` and the alert proxy (not in the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)
    reader = dashboard.auth.require(Role.READ)

    @router.get("/")
    async def page() -> Response:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
        )

    @router.get("/static/{path:path}")
    async def asset(path: str) -> Response:
        return FileResponse(_static_file(path), headers={"Cache-Control": "no-cache"})

    @router.get("/v1/dashboard/me")
    async def me(token: Annotated[Token, Depends(reader)]) -> dict[str, Any]:
        return {
            "role": token.role.value,
            "units": [_unit_json(dashboard.registry, s) for s in token.scopes],
            "alerts": dashboard.alerts_url is not None,
            "code_lengths": list(CODE_LENGTHS),
        }

    @router.get("/v1/live")
    async def live(
        token: Annotated[Token, Depends(dashboard.auth.require_for_stream(Role.READ))],
        unit: Annotated[str | None, Query(pattern=CODE_PREFIX)] = None,
    ) -> StreamingResponse:
        if unit is not None:
            dashboard.auth.ensure_scope(token, unit)
        subscriber = dashboard.hub.subscribe(Watch(token.scopes, unit))
        return StreamingResponse(
            stream(
                dashboard.hub,
                subscriber,
                dashboard.heartbeat_s,
                _now,
                authorised=lambda: dashboard.auth.still_active(token),
                recheck_s=dashboard.token_recheck_s,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def forward(request: Request, method: str, path: str) -> Response:
        if dashboard.alerts_url is None:
            return JSONResponse({"detail": "no alerts service configured"}, status_code=503)
        headers = {"accept": "application/json"}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        try:
            async with httpx.AsyncClient(timeout=dashboard.proxy_timeout_s) as client:
                answer = await client.request(
                    method,
                    f"{dashboard.alerts_url}{path}",
                    params=list(request.query_params.multi_items()),
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"detail": f"alerts service unreachable: {type(exc).__name__}"}, status_code=502
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type", "application/json"),
        )

    @router.get("/v1/alerts")
    async def list_alerts(request: Request) -> Response:
        return await forward(request, "GET", "/v1/alerts")

    @router.get("/v1/alerts/{alert_id}")
    async def get_alert(request: Request, alert_id: AlertId) -> Response:
        return await forward(request, "GET", f"/v1/alerts/{alert_id}")

    @router.post("/v1/alerts/{alert_id}/ack")
    async def acknowledge(request: Request, alert_id: AlertId) -> Response:
        return await forward(request, "POST", f"/v1/alerts/{alert_id}/ack")

    @router.post("/v1/alerts/{alert_id}/resolve")
    async def resolve(request: Request, alert_id: AlertId) -> Response:
        return await forward(request, "POST", f"/v1/alerts/{alert_id}/resolve")

    return router
