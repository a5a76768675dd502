"""The alerts HTTP API: list, inspect, acknowledge and resolve alerts; delivery status."""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_alerts import metrics, store
from zhibao_alerts.domain.silences import Matcher
from zhibao_alerts.payloads import rollup_link
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts, notifications, silences
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.tokens import Role, Token

STATES = ("firing", "acknowledged", "silenced", "resolved")
AlertId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Alert id")]


UNIT_LABELS = {"unit", "community", "street", "district", "city"}


class SilenceRequest(BaseModel):
    """A new silence."""

    matchers: list[Matcher] = Field(min_length=1, max_length=20)
    duration_minutes: float = Field(gt=0, le=60 * 24 * 30)
    comment: str = Field(min_length=1, max_length=500)


def _alert(row: Any, routing: Routing) -> dict[str, Any]:
    data = dict(row._mapping)
    for key, value in data.items():
        if isinstance(value, datetime) or hasattr(value, "isoformat"):
            data[key] = value.isoformat() if value is not None else None
    registry = routing.registry
    data["path"] = (
        [{"code": u.code, "name": u.name, "level": u.level.value} for u in registry.path(row.unit)]
        if row.unit in registry
        else []
    )
    data["rollup_url"] = rollup_link(routing.aggregator_url, row.unit, row.day.isoformat())
    return data


def build_router(
    engine: AsyncEngine,
    auth: TokenAuth,
    clock: Callable[[], datetime],
    routing: Callable[[], Routing],
) -> APIRouter:
    """Routes under ``/v1``; reading needs a read token, acting an operate token.

    Alerts are answered with their unit's hierarchy path and a link to its rollup.
    """
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
        return {"alerts": [_alert(r, routing()) for r in rows]}

    @router.get("/alerts/{alert_id}", summary="One alert with its timeline and deliveries")
    async def get_alert(
        alert_id: AlertId, token: Annotated[Token, Depends(reader)]
    ) -> dict[str, Any]:
        row = await visible(alert_id, token)
        async with engine.connect() as conn:
            events = await store.alert_timeline(conn, alert_id)
            sent = await store.alert_notifications(conn, alert_id)
        return {
            **_alert(row, routing()),
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
        if action == "acknowledged":
            waited = max(0.0, (now - row.fired_at).total_seconds())
            metrics.TIME_TO_ACKNOWLEDGE.labels(row.severity).observe(waited)
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

    @router.post("/silences", status_code=201, summary="Silence matching alerts until ends_at")
    async def create_silence(
        request: SilenceRequest, token: Annotated[Token, Depends(operator)]
    ) -> dict[str, Any]:
        units = [m.value for m in request.matchers if m.name in UNIT_LABELS and not m.is_regex]
        if not units:
            raise unprocessable(
                ("body", "matchers"),
                "a silence needs a matcher on unit, community, street, district or city "
                "(equality) to say whose alerts it covers",
            )
        for unit in units:
            auth.ensure_scope(token, unit)
        now = clock()
        ends = now + timedelta(minutes=request.duration_minutes)
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(silences)
                .values(
                    matchers=json.dumps([m.model_dump() for m in request.matchers]),
                    starts_at=now,
                    ends_at=ends,
                    created_by=token.name,
                    comment=request.comment,
                )
                .returning(silences.c.id)
            )
            silence_id = int(result.scalar_one())
        return {"id": silence_id, "ends_at": ends.isoformat()}

    @router.get("/silences", summary="Silences in force")
    async def list_silences(token: Annotated[Token, Depends(reader)]) -> dict[str, Any]:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(silences).where(silences.c.ends_at > clock()))).all()
        return {
            "silences": [
                {
                    "id": r.id,
                    "matchers": json.loads(r.matchers),
                    "starts_at": r.starts_at.isoformat(),
                    "ends_at": r.ends_at.isoformat(),
                    "created_by": r.created_by,
                    "comment": r.comment,
                }
                for r in rows
            ]
        }

    @router.delete("/silences/{silence_id}", summary="Expire a silence now")
    async def expire_silence(
        silence_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
        token: Annotated[Token, Depends(operator)],
    ) -> dict[str, Any]:
        async with engine.begin() as conn:
            found = await conn.execute(
                update(silences).where(silences.c.id == silence_id).values(ends_at=clock())
            )
        if found.rowcount == 0:
            raise HTTPException(404, f"no silence {silence_id}")
        return {"id": silence_id, "expired": True}

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
