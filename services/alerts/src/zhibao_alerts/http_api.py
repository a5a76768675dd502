"""The alerts HTTP API: list, inspect, acknowledge and resolve alerts; delivery status."""

# No `from __future__ import annotations`: FastAPI resolves the closures' annotations.

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import metrics, store, task_store
from zhibao_alerts.busy import retrying
from zhibao_alerts.domain.redaction import mask_target, mask_text, target_id
from zhibao_alerts.domain.silences import MAX_MATCHERS, Matcher, stored_matchers
from zhibao_alerts.domain.task_overdue import RULE as TASK_OVERDUE
from zhibao_alerts.payloads import rollup_link
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts, notifications, silences
from zhibao_shared.audit import AuditTrail
from zhibao_shared.db import consistent_read
from zhibao_shared.hierarchy import CODE_PREFIX, Level
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.tokens import Role, Token

STATES = ("firing", "acknowledged", "silenced", "recorded", "resolved", "expired")
#: The most tasks a task_overdue alert's detail lists (soonest due first).
TASKS_SHOWN = 1000
AlertId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Alert id")]


UNIT_LABELS = {"unit", *(level.value for level in Level)}


class SilenceRequest(BaseModel):
    """A new silence."""

    matchers: list[Matcher] = Field(min_length=1, max_length=MAX_MATCHERS)
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


def _delivery(row: Any) -> dict[str, Any]:
    """A notification as the API shows it: its target and error masked, for every role."""
    return {
        "channel": row.channel,
        "target": mask_target(row.channel, row.target),
        "target_id": target_id(row.target),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": mask_text(row.last_error, (row.target,)),
    }


def _silence(row: Any) -> dict[str, Any]:
    """A silence as the API shows it, with who made it and who expired it."""
    return {
        "id": row.id,
        "matchers": json.loads(row.matchers),
        "units": silence_units(row),
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "created_by": row.created_by,
        "created_by_token": row.created_by_token,
        "created_by_person": row.created_by_person,
        "comment": row.comment,
        "expired_at": row.expired_at.isoformat() if row.expired_at else None,
        "expired_by": row.expired_by,
        "expired_by_token": row.expired_by_token,
        "expired_by_person": row.expired_by_person,
    }


def silence_units(row: Any) -> list[str]:
    """The units a stored silence covers (from its literal unit matchers when older rows
    have no ``units``)."""
    if row.units:
        return list(json.loads(row.units))
    matchers = stored_matchers(json.loads(row.matchers)) or []
    return [m.value for m in matchers if m.name in UNIT_LABELS and not m.is_glob]


def within(token: Token, units: list[str]) -> bool:
    """True when the token covers every unit the silence covers (and it covers some)."""
    return bool(units) and all(token.covers(u) for u in units)


#: The setting that makes acting on alerts personal (named in the refusal).
PERSONAL_RULE = "ZHIBAO_ALERTS_REQUIRE_PERSONAL_TOKENS"
Dependency = Callable[..., Awaitable[Token]]


def personal_operator(operator: Dependency, required: bool) -> Callable[[str], Dependency]:
    """Dependencies for the actions a person answers for: an operate token, which must
    name its person when ``required``; a shared system token is refused 403."""

    def for_action(what: str) -> Dependency:
        async def dependency(token: Annotated[Token, Depends(operator)]) -> Token:
            if required and token.person is None:
                raise HTTPException(
                    403,
                    f"to {what} takes a personal token ({PERSONAL_RULE} is on): token "
                    f"{token.name!r} is a shared token that names no person; act with one "
                    "made by `zhibao token create --role operate --person '<name> (<role>)'`",
                )
            return token

        return dependency

    return for_action


def by_whom(token: Token) -> str:
    """Who acted, as a timeline shows it: the person and the token, or the token alone."""
    return f"{token.person} (token {token.name})" if token.person else f"token {token.name}"


def build_router(
    engine: AsyncEngine,
    auth: TokenAuth,
    clock: Callable[[], datetime],
    routing: Callable[[], Routing],
    lock_wait_s: float = 3.0,
    require_personal: bool = True,
    *,
    audit: AuditTrail,
) -> APIRouter:
    """Routes under ``/v1``; reading needs a read token, acting an operate token.

    Each operator action (acknowledge, resolve, silence, expire a silence) is
    appended to the audit trail once it is done.

    Alerts are answered with their unit's hierarchy path and a link to its rollup.
    Writes are retried while SQLite is locked for up to ``lock_wait_s``, then 503.
    With ``require_personal`` (ZHIBAO_ALERTS_REQUIRE_PERSONAL_TOKENS), acknowledging,
    resolving and silencing need a personal token: a shared one is refused 403.
    """
    router = APIRouter(
        prefix="/v1",
        tags=["alerts"],
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token's role or units do not allow this"},
            404: {"description": "No such alert or silence"},
            409: {"description": "The alert or silence is already in that state"},
            503: {"description": "The database is busy (see Retry-After)"},
        },
    )
    reader = auth.require(Role.READ)
    operator = auth.require(Role.OPERATE)
    personal = personal_operator(operator, require_personal)

    async def visible(conn: AsyncConnection, alert_id: int, token: Token) -> Any:
        """The alert, if ``token`` may see it (404 if none, 403 if out of its scope)."""
        row = await store.get_alert(conn, alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        auth.ensure_scope(token, row.unit)
        return row

    @router.get("/alerts", summary="Alerts for a unit and below")
    async def list_alerts(
        token: Annotated[Token, Depends(reader)],
        unit: Annotated[str | None, Query(pattern=CODE_PREFIX)] = None,
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
        # one snapshot: a page read while a commit lands shows it whole or not at all
        async with consistent_read(engine) as conn:
            row = await visible(conn, alert_id, token)
            events = await store.alert_timeline(conn, alert_id)
            sent = await store.alert_notifications(conn, alert_id)
            tasks = (
                {"tasks": await task_store.members(conn, alert_id, TASKS_SHOWN)}
                if row.rule == TASK_OVERDUE
                else {}
            )
        return {
            **_alert(row, routing()),
            "timeline": [
                {
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "actor": e.actor,
                    "person": e.person,
                    "detail": e.detail,
                }
                for e in events
            ],
            "notifications": [{**_delivery(n), "reason": n.reason} for n in sent],
            **tasks,
        }

    async def transition(alert_id: int, token: Token, action: str) -> dict[str, Any]:
        async with engine.connect() as conn:
            row = await visible(conn, alert_id, token)
        now = clock()
        if row.state == "resolved" or (action == "acknowledged" and row.state == action):
            raise HTTPException(409, f"alert {alert_id} is already {row.state}")
        values = (
            {
                "state": "acknowledged",
                "acknowledged_at": now,
                "acknowledged_by": token.name,
                "acknowledged_by_person": token.person,
            }
            if action == "acknowledged"
            else {
                "state": "resolved",
                "resolved_at": now,
                "resolved_by": token.name,
                "resolved_by_person": token.person,
            }
        )

        async def write() -> None:
            async with engine.begin() as conn:
                await store.update_alert(conn, alert_id, **values)
                await store.note(
                    conn,
                    alert_id,
                    now,
                    action,
                    actor=token.name,
                    detail=f"{action} by {by_whom(token)}",
                    person=token.person,
                )

        await retrying(write, lock_wait_s)
        audit.record(f"alert.{action}", token, unit=row.unit, target=str(alert_id))
        if action == "acknowledged":
            waited = max(0.0, (now - row.fired_at).total_seconds())
            metrics.TIME_TO_ACKNOWLEDGE.labels(row.severity).observe(waited)
        return {"id": alert_id, "state": values["state"]}

    @router.post("/alerts/{alert_id}/ack", summary="Acknowledge: stops escalation")
    async def acknowledge(
        alert_id: AlertId, token: Annotated[Token, Depends(personal("acknowledge an alert"))]
    ) -> dict[str, Any]:
        return await transition(alert_id, token, "acknowledged")

    @router.post("/alerts/{alert_id}/resolve", summary="Resolve")
    async def resolve(
        alert_id: AlertId, token: Annotated[Token, Depends(personal("resolve an alert"))]
    ) -> dict[str, Any]:
        return await transition(alert_id, token, "resolved")

    @router.post("/silences", status_code=201, summary="Silence matching alerts until ends_at")
    async def create_silence(
        request: SilenceRequest, token: Annotated[Token, Depends(personal("create a silence"))]
    ) -> dict[str, Any]:
        units = [m.value for m in request.matchers if m.name in UNIT_LABELS and not m.is_glob]
        if not units:
            raise unprocessable(
                ("body", "matchers"),
                "a silence needs a matcher on unit, community, street, district or city "
                "(a literal value) to say whose alerts it covers",
            )
        for unit in units:
            auth.ensure_scope(token, unit)
        now = clock()
        ends = now + timedelta(minutes=request.duration_minutes)
        values = {
            "matchers": json.dumps([m.model_dump() for m in request.matchers]),
            "units": json.dumps(units),
            "starts_at": now,
            "ends_at": ends,
            "created_by": token.name,
            "created_by_token": token.id,
            "created_by_person": token.person,
            "comment": request.comment,
        }

        async def write() -> int:
            async with engine.begin() as conn:
                result = await conn.execute(
                    insert(silences).values(**values).returning(silences.c.id)
                )
                return int(result.scalar_one())

        silence_id = await retrying(write, lock_wait_s)
        audit.record(
            "silence.created",
            token,
            unit=units[0],
            target=str(silence_id),
            detail={"units": units, "ends_at": ends.isoformat()},
        )
        return {"id": silence_id, "ends_at": ends.isoformat()}

    @router.get("/silences", summary="Silences within the token's units (in force, or all)")
    async def list_silences(
        token: Annotated[Token, Depends(reader)],
        include_expired: Annotated[bool, Query(description="Also ended ones")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
    ) -> dict[str, Any]:
        query = select(silences).order_by(silences.c.id.desc())
        if not include_expired:
            query = query.where(silences.c.ends_at > clock())
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        mine = [r for r in rows if within(token, silence_units(r))]
        return {"silences": [_silence(r) for r in mine[:limit]]}

    @router.delete("/silences/{silence_id}", summary="Expire a silence now")
    async def expire_silence(
        silence_id: Annotated[int, Path(ge=1, le=2_147_483_647)],
        token: Annotated[Token, Depends(personal("expire a silence"))],
    ) -> dict[str, Any]:
        async with engine.connect() as conn:
            row = (await conn.execute(select(silences).where(silences.c.id == silence_id))).first()
        if row is None:
            raise HTTPException(404, f"no silence {silence_id}")
        if not within(token, silence_units(row)):
            raise HTTPException(403, f"silence {silence_id} covers units outside this token's")
        now = clock()
        if row.ends_at <= now:
            raise HTTPException(409, f"silence {silence_id} has already ended")

        async def write() -> int:
            async with engine.begin() as conn:
                found = await conn.execute(
                    update(silences)
                    .where(silences.c.id == silence_id, silences.c.ends_at > now)
                    .values(
                        ends_at=now,
                        expired_at=now,
                        expired_by=token.name,
                        expired_by_token=token.id,
                        expired_by_person=token.person,
                    )
                )
                return int(found.rowcount)

        if await retrying(write, lock_wait_s) == 0:
            raise HTTPException(409, f"silence {silence_id} has already ended")
        audit.record("silence.expired", token, unit=silence_units(row)[0], target=str(silence_id))
        return {"id": silence_id, "expired": True, "expired_at": now.isoformat()}

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
        return {"notifications": [{"alert_id": r.alert_id, **_delivery(r)} for r in rows]}

    return router
