"""The response service's HTTP API (thin: checks who may do what, then delegates)."""

import re

# No `from __future__ import annotations`: FastAPI resolves the annotations at runtime.
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from zhibao_response.config_files import WatchedPlaybook
from zhibao_response.domain.playbook import ResponseLevel
from zhibao_response.domain.tasks import (
    InvalidTransition,
    TransferOutside,
    VisitRequired,
    check_change,
    may_change,
    validate_batch,
)
from zhibao_response.domain.texts import Label, Reason
from zhibao_response.levels import LevelDesk
from zhibao_response.metrics import LEVELS_DECLARED, TASKS_CHANGED, TASKS_ISSUED
from zhibao_response.point_places import level_compounds
from zhibao_response.store import Actor, Conflict, KeyReused, TaskStore
from zhibao_response.task_service import TaskDesk, keyed_task_id
from zhibao_shared.audit import AuditTrail
from zhibao_shared.hierarchy import CODE_LENGTH, UNIT_CODE, Level, Registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import json_body, unprocessable
from zhibao_shared.task_events import TaskState
from zhibao_shared.tokens import Role, Token

TASK_ID = r"^[0-9a-f]{32}$"


class StateChange(BaseModel):
    """A community's change of a task's state."""

    model_config = ConfigDict(extra="forbid")

    state: TaskState = Field(description="accepted, done, unreachable, refused or transferred")
    to: str | None = Field(
        default=None, pattern=r"^\d{12}$", description="For transferred: the community it moves to"
    )


class Assignment(BaseModel):
    """Who in the community does the task."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    worker: Label | None = Field(description="A grid worker's name or grid; null unassigns")


class LevelDeclaration(BaseModel):
    """A response level declared (or lifted, with level ``none``) for a unit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    unit: str = Field(
        pattern=UNIT_CODE, description="Any unit: a community up to the city or the province"
    )
    level: ResponseLevel
    reason: Reason
    compounds: list[Label] = Field(
        default_factory=list, max_length=200, description="Compounds named (a community's)"
    )


async def busy(_request: Request, _exc: Exception) -> JSONResponse:
    """The database is locked or unreachable: 503, try again shortly (never a 500)."""
    return JSONResponse(
        {"detail": "the database is busy; try again shortly"},
        status_code=503,
        headers={"Retry-After": "2"},
    )


class ResponseApi:
    """The routes' collaborators."""

    def __init__(
        self,
        store: TaskStore,
        desk: TaskDesk,
        levels: LevelDesk,
        playbook: WatchedPlaybook,
        registry: Registry,
        clock: Callable[[], datetime],
        max_tasks: int,
        max_body_bytes: int,
        announce: Callable[[], Awaitable[object]],
        audit: AuditTrail,
    ) -> None:
        self.store = store
        self.desk = desk
        self.levels = levels
        self.playbook = playbook
        self.registry = registry
        self.clock = clock
        self.max_tasks = max_tasks
        self.max_body_bytes = max_body_bytes
        #: Waits until what was written is on the tasks stream (before answering).
        self.announce = announce
        #: Each action done here is appended to the audit trail.
        self.audit = audit

    async def read_tasks(self, request: Request) -> Any:
        """The request's JSON body, refused clearly when too large or not JSON."""
        too_large = HTTPException(413, f"the body is larger than {self.max_body_bytes} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():  # never more than the limit in memory
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return json_body(b"".join(chunks))

    async def task_for(self, task_id: str, token: Token, *, issuer_may: bool) -> Row[Any]:
        """The task, or 404; 403 unless the token covers its unit (or issued it)."""
        task = await self.store.get(task_id)
        if task is None:
            raise HTTPException(404, "no such task")
        if token.covers(task.unit) or (issuer_may and token.id == task.issuer_token):
            return task
        raise HTTPException(403, f"this token may not see unit {task.unit}")


#: The header naming a request, so that a retry issues nothing twice (IETF
#: draft-ietf-httpapi-idempotency-key-header), and the answer's mark of a retry.
IDEMPOTENCY_KEY = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,200}$")


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (1–200 visible ASCII characters), None when it
    sent none; 400 for a malformed one."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    key = key.strip().strip('"')
    if not _KEY_SHAPE.fullmatch(key):
        raise HTTPException(400, "Idempotency-Key must be 1 to 200 visible ASCII characters")
    return key


def ensure_command_centre(token: Token, unit: str) -> None:
    """403 unless the token is a command centre's covering ``unit``: a district's, a city's
    or a province's. A community's token (its grid workers' page uses one) or a street's
    may not declare, replace or lift a response level, not even its own unit's."""
    deepest = CODE_LENGTH[Level.DISTRICT]
    if not any(unit.startswith(scope) and len(scope) <= deepest for scope in token.scopes):
        raise HTTPException(
            403,
            f"response levels of {unit} are declared by the command centre of its district, "
            "city or province",
        )


def build_router(api: ResponseApi, auth: TokenAuth) -> APIRouter:
    """The ``/v1`` routes."""
    router = APIRouter(
        prefix="/v1",
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "The token's role or units do not allow this"},
        },
    )
    operate = auth.require(Role.OPERATE)
    read = auth.require(Role.READ)

    @router.post(
        "/tasks",
        status_code=201,
        summary="Issue tasks (all or none)",
        responses={
            400: {"description": "The body is not JSON"},
            403: {"description": "A task's unit lies outside the token's scope"},
            413: {"description": "Too many tasks or too large a body"},
            422: {"description": "Problems per task: index, field, rule (values not echoed)"},
        },
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
                },
                "required": True,
            }
        },
    )
    async def issue(request: Request, token: Annotated[Token, Depends(operate)]) -> JSONResponse:
        body = await api.read_tasks(request)
        if isinstance(body, list) and len(body) > api.max_tasks:
            raise HTTPException(413, f"at most {api.max_tasks} tasks per request")
        tasks, problems = validate_batch(body, api.registry)
        if problems:
            raise HTTPException(
                422,
                {
                    "message": f"{len(problems)} problem(s); no task was issued",
                    "problems": [p.as_dict() for p in problems[:1000]],
                },
            )
        outside = sorted({t.unit for t in tasks if not token.covers(t.unit)})
        if outside:
            raise HTTPException(
                403, f"this token may not issue tasks for {', '.join(outside[:20])}"
            )
        key = idempotency_key(request)
        answer = {"issued": len(tasks)}
        if key is None:
            new = api.desk.prepare_all(tasks)
            await api.store.issue(new, Actor.of(token))
        else:
            ids = [keyed_task_id(token.id, key, i) for i in range(len(tasks))]
            new = api.desk.prepare_all(tasks, ids)
            try:
                issued_now = await api.store.issue_once(new, Actor.of(token))
            except KeyReused as exc:
                raise HTTPException(422, str(exc)) from None
            if not issued_now:
                replayed = {**answer, "ids": ids}
                return JSONResponse(replayed, status_code=201, headers={REPLAYED: "true"})
        TASKS_ISSUED.labels("api").inc(len(new))
        for t in new:
            api.audit.record(
                "task.issued", token, unit=t.unit, target=t.id, detail={"kind": t.kind}
            )
        await api.announce()
        return JSONResponse({**answer, "ids": [t.id for t in new]}, status_code=201)

    @router.get("/tasks", summary="A unit's tasks (and those of the units below it)")
    async def list_tasks(
        token: Annotated[Token, Depends(read)],
        unit: Annotated[str, Query(pattern=UNIT_CODE)],
        state: TaskState | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        auth.ensure_scope(token, unit)
        rows = await api.store.list_tasks(unit, state, limit, offset)
        now = api.clock()
        return {"unit": unit, "tasks": [api.desk.view(r, token, now) for r in rows]}

    @router.get(
        "/tasks/{task_id}",
        summary="One task with its history",
        responses={404: {"description": "No such task"}},
    )
    async def get_task(
        task_id: Annotated[str, Path(pattern=TASK_ID)], token: Annotated[Token, Depends(read)]
    ) -> dict[str, Any]:
        task = await api.task_for(task_id, token, issuer_may=True)
        history = await api.store.history(task_id)
        results = await api.store.results_of(h.id for h in history)
        view = api.desk.view(task, token, api.clock())
        view["history"] = [
            {
                "at": h.at.isoformat(),
                "action": h.action,
                "state": h.state,
                "unit": h.unit,
                "from_unit": h.from_unit,
                "worker": h.worker,
                "by": h.actor,
                "result": api.desk.result_view(results.get(h.id), task, token),
            }
            for h in history
        ]
        return view

    @router.post(
        "/tasks/{task_id}/state",
        summary="Accept, complete, or transfer a task",
        responses={
            403: {
                "description": "The token's units do not cover the task, or a transfer "
                "leaves the district the task was issued in"
            },
            404: {"description": "No such task"},
            409: {"description": "Not allowed from the task's state, or changed meanwhile"},
            422: {
                "description": "A transfer's community is missing or unknown, or done "
                "for a task whose kind needs a visit (type visit_required: report the "
                "result through intake with method visit)"
            },
        },
    )
    async def change_state(
        task_id: Annotated[str, Path(pattern=TASK_ID)],
        change: StateChange,
        token: Annotated[Token, Depends(operate)],
    ) -> dict[str, Any]:
        task = await api.task_for(task_id, token, issuer_may=False)
        if not may_change(token.scopes, task.unit, task.issuer_scope):
            raise HTTPException(
                403,
                f"this task was issued by a command centre of {task.issuer_scope}: its state "
                "is changed by the community it is with, or from that level up",
            )
        if change.state is TaskState.TRANSFERRED:
            if change.to is None or not api.registry.is_community(change.to):
                raise unprocessable(("body", "to"), "a transfer names a community of the registry")
            if change.to == task.unit:
                raise unprocessable(("body", "to"), "the task is already with that community")
        elif change.to is not None:
            raise unprocessable(("body", "to"), "only a transfer names a community")
        try:
            check_change(
                TaskState(task.state),
                change.state,
                unit=task.unit,
                kind=task.kind,
                requires_visit=api.store.requires_visit(task.kind),
                to=change.to,
                reach=token.scopes,
            )
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from None
        except VisitRequired as exc:
            raise unprocessable(("body", "state"), str(exc), "visit_required") from None
        except TransferOutside as exc:
            raise HTTPException(403, str(exc)) from None
        try:
            await api.store.change(task, change.state, Actor.of(token), change.to)
        except Conflict:
            raise HTTPException(409, "the task changed meanwhile; read it again") from None
        TASKS_CHANGED.labels(change.state.value).inc()
        api.audit.record(
            f"task.{change.state.value}",
            token,
            unit=task.unit,
            target=task_id,
            detail={"to": change.to} if change.to else None,
        )
        await api.announce()
        updated = await api.store.get(task_id)
        assert updated is not None
        return api.desk.view(updated, token, api.clock())

    @router.post(
        "/tasks/{task_id}/assign",
        summary="Assign an open task to a grid worker",
        responses={
            404: {"description": "No such task"},
            409: {"description": "The task is closed, or changed meanwhile"},
        },
    )
    async def assign(
        task_id: Annotated[str, Path(pattern=TASK_ID)],
        assignment: Assignment,
        token: Annotated[Token, Depends(operate)],
    ) -> dict[str, Any]:
        task = await api.task_for(task_id, token, issuer_may=False)
        try:
            await api.store.assign(task, assignment.worker, Actor.of(token))
        except Conflict:
            raise HTTPException(409, "the task is closed or changed meanwhile") from None
        api.audit.record(
            "task.assigned",
            token,
            unit=task.unit,
            target=task_id,
            detail={"assigned": assignment.worker is not None},
        )
        updated = await api.store.get(task_id)
        assert updated is not None
        return api.desk.view(updated, token, api.clock())

    @router.post(
        "/levels",
        status_code=201,
        summary="Declare (or lift) a unit's response level",
        responses={409: {"description": "Another declaration for the unit came at the same time"}},
    )
    async def declare(
        declaration: LevelDeclaration, token: Annotated[Token, Depends(operate)]
    ) -> dict[str, Any]:
        auth.ensure_scope(token, declaration.unit)
        ensure_command_centre(token, declaration.unit)
        if declaration.unit not in api.registry:
            raise unprocessable(("body", "unit"), "not a unit of the registry")
        compounds = tuple(dict.fromkeys(declaration.compounds))
        if compounds and not api.registry.is_community(declaration.unit):
            raise unprocessable(("body", "compounds"), "only a community's compounds can be named")
        if api.levels.places is not None:
            level_compounds(api.levels.places, declaration.unit, compounds)
        try:
            answer = await api.levels.declare(
                declaration.unit, declaration.level, declaration.reason, compounds, Actor.of(token)
            )
        except Conflict:
            raise HTTPException(409, "another declaration for this unit came first") from None
        LEVELS_DECLARED.labels(declaration.level.value).inc()
        api.audit.record(
            "level.lifted" if declaration.level is ResponseLevel.NONE else "level.declared",
            token,
            unit=declaration.unit,
            target=answer["declaration"],
            detail={"level": declaration.level.value, "tasks_issued": len(answer["tasks_issued"])},
        )
        await api.announce()
        return answer

    @router.get(
        "/levels/{code}",
        summary="A unit's response level, its measures' progress and every declaration",
        responses={404: {"description": "No such unit in the registry"}},
        dependencies=[Depends(auth.unit_scope(Role.READ))],
    )
    async def level_status(code: Annotated[str, Path(pattern=UNIT_CODE)]) -> dict[str, Any]:
        if code not in api.registry:
            raise HTTPException(404, f"no unit {code} in the registry")
        return await api.levels.status(code)

    @router.get("/playbook", summary="The playbook in force (and why a new file was refused)")
    async def playbook(_token: Annotated[Token, Depends(read)]) -> dict[str, Any]:
        return {
            "playbook": api.playbook.current.model_dump(mode="json"),
            "last_error": api.playbook.last_error,
        }

    return router
