"""The alerts HTTP API: list, inspect, acknowledge and resolve alerts; delivery status."""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_alerts import store
from zhibao_alerts.tables import alerts, notifications
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.tokens import Role, Token

STATES = ("firing", "acknowledged", "resolved")
AlertId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Alert id")]


def _alert(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for key, value in data.items():
        if isinstance(value, datetime) or hasattr(value, "isoformat"):
            data[key] = value.isoformat() if value is not None else None
    return data


def build_router(engine: AsyncEngine, auth: TokenAuth, clock: Callable[[], datetime]) -> APIRouter:
    """Routes under ``/v1``; reading needs a read token, acting an operate token."""
    router = APIRouter(
        prefix="/v1",
        tags=["alerts"],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token's role or units do not allow this"},
            404: {"description": "No such alert"},
            409: {"description": "The alert is already in that state"},
        },
    )
    reader = auth.require(Role.READ)
    operator = auth.require(Role.OPERATE)

    async def visible(alert_id: int, token: Token) -> Any:
        async with engine.connect() as conn:
            row = await store.get_alert(conn, alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        auth.ensure_scope(token, row.unit)
        return row

    @router.get("/alerts", summary="Alerts for a unit and below")
    async def list_alerts(
        token: Annotated[Token, Depends(reader)],
        unit: Annotated[str | None, Query(pattern=r"^\d{4,12}$")] = None,
        state: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        prefixes = [unit] if unit else list(token.scopes)
        if unit:
            auth.ensure_scope(token, unit)
        wanted = [s for s in (state or ["firing", "acknowledged"]) if s in STATES]
        query = (
            select(alerts)
            .where(
                or_(*(alerts.c.unit.startswith(p) for p in prefixes)), alerts.c.state.in_(wanted)
            )
            .order_by(alerts.c.fired_at.desc())
            .limit(limit)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {"alerts": [_alert(r) for r in rows]}

    @router.get("/alerts/{alert_id}", summary="One alert with its timeline and deliveries")
    async def get_alert(
        alert_id: AlertId, token: Annotated[Token, Depends(reader)]
    ) -> dict[str, Any]:
        row = await visible(alert_id, token)
        async with engine.connect() as conn:
            events = await store.alert_timeline(conn, alert_id)
            sent = await store.alert_notifications(conn, alert_id)
        return {
            **_alert(row),
            "timeline": [
                {"at": e.at.isoformat(), "action": e.action, "actor": e.actor, "detail": e.detail}
                for e in events
            ],
            "notifications": [
                {
                    "channel": n.channel,
                    "target": n.target,
                    "reason": n.reason,
                    "status": n.status,
                    "attempts": n.attempts,
                    "last_error": n.last_error,
                }
                for n in sent
            ],
        }

    async def transition(alert_id: int, token: Token, action: str) -> dict[str, Any]:
        row = await visible(alert_id, token)
        now = clock()
        if row.state == "resolved" or (action == "acknowledged" and row.state == action):
            raise HTTPException(409, f"alert {alert_id} is already {row.state}")
        values = (
            {"state": "acknowledged", "acknowledged_at": now, "acknowledged_by": token.name}
            if action == "acknowledged"
            else {"state": "resolved", "resolved_at": now}
        )
        async with engine.begin() as conn:
            await store.update_alert(conn, alert_id, **values)
            await store.note(conn, alert_id, now, action, actor=token.name)
        return {"id": alert_id, "state": values["state"]}

    @router.post("/alerts/{alert_id}/ack", summary="Acknowledge: stops escalation")
    async def acknowledge(
        alert_id: AlertId, token: Annotated[Token, Depends(operator)]
    ) -> dict[str, Any]:
        return await transition(alert_id, token, "acknowledged")

    @router.post("/alerts/{alert_id}/resolve", summary="Resolve")
    async def resolve(
        alert_id: AlertId, token: Annotated[Token, Depends(operator)]
    ) -> dict[str, Any]:
        return await transition(alert_id, token, "resolved")

    @router.get("/notifications", summary="Deliveries by status (failures are listed here)")
    async def deliveries(
        token: Annotated[Token, Depends(operator)],
        status: Annotated[str, Query(pattern="^(pending|sent|failed)$")] = "failed",
    ) -> dict[str, Any]:
        query = (
            select(notifications, alerts.c.unit)
            .join(alerts, alerts.c.id == notifications.c.alert_id)
            .where(
                notifications.c.status == status,
                or_(*(alerts.c.unit.startswith(p) for p in token.scopes)),
            )
            .order_by(notifications.c.id.desc())
            .limit(200)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            "notifications": [
                {
                    "alert_id": r.alert_id,
                    "channel": r.channel,
                    "target": r.target,
                    "status": r.status,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                }
                for r in rows
            ]
        }

    return router
