"""HTTP routes of report templates: list and create them, fill one for a unit (XLSX, CSV)."""

# No `from __future__ import annotations`: FastAPI resolves the closures' dependency
# annotations at runtime.

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from zhibao_aggregator import templates_report
from zhibao_aggregator.domain.templates import (
    FIGURES,
    SUMMED_OVER_DAYS,
    ReportTemplate,
    check_against,
    check_range,
    days_of,
)
from zhibao_aggregator.http_api import readable
from zhibao_aggregator.reader import RollupReader
from zhibao_aggregator.templates_catalogue import Entry, TemplateCatalogue, TemplateExists
from zhibao_shared.audit import AuditTrail
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.http_errors import unprocessable
from zhibao_shared.tokens import Role, Token

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown token"},
    403: {"description": "The token may not do this, or not for this unit"},
}


def entry_json(entry: Entry) -> dict[str, Any]:
    """A template as the API lists it: its definition and where it comes from."""
    return {
        **entry.template.model_dump(mode="json", by_alias=True, exclude_none=True),
        "source": entry.source,
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "created_by": entry.created_by,
    }


def build_templates_router(
    catalogue: TemplateCatalogue, reader: RollupReader, auth: TokenAuth, audit: AuditTrail
) -> APIRouter:
    """``/v1/templates``: read tokens list the templates their scope meets; operate tokens
    create templates for a unit they cover (each creation goes to the audit trail)."""
    router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=_AUTH_RESPONSES)
    reader_token = auth.require(Role.READ)
    operator_token = auth.require(Role.OPERATE)

    @router.get("", summary="The report templates this token may see (files and created)")
    async def list_templates(token: Annotated[Token, Depends(reader_token)]) -> dict[str, Any]:
        entries = await catalogue.visible_to(token.scopes)
        return {"templates": [entry_json(e) for e in entries]}

    @router.get("/figures", summary="The rollup figures a template column may name")
    async def figures(_token: Annotated[Token, Depends(reader_token)]) -> dict[str, Any]:
        return {
            "figures": [
                {"figure": name, "over_a_range": "sum" if name in SUMMED_OVER_DAYS else "last"}
                for name in sorted(FIGURES)
            ]
        }

    @router.get(
        "/{template_id}", summary="One template", responses={404: {"description": "Not seen"}}
    )
    async def one(
        template_id: str, token: Annotated[Token, Depends(reader_token)]
    ) -> dict[str, Any]:
        for entry in await catalogue.visible_to(token.scopes):
            if entry.template.id == template_id:
                return entry_json(entry)
        raise HTTPException(404, f"no template {template_id}")

    @router.post(
        "",
        status_code=201,
        summary="Create a template for a unit the token covers (its department's unit)",
        responses={409: {"description": "The id is taken"}},
    )
    async def create(
        template: ReportTemplate, token: Annotated[Token, Depends(operator_token)]
    ) -> dict[str, Any]:
        template = _owned(template, token)
        wrong = check_against(template, reader.registry)
        if wrong:
            raise unprocessable(("body", "unit"), wrong)
        try:
            at = await catalogue.create(template, token.id)
        except TemplateExists:
            raise HTTPException(409, f"a template {template.id} exists already") from None
        audit.record("template.created", token, unit=template.unit, target=template.id)
        return entry_json(Entry(template, "api", at, token.id))

    return router


def _owned(template: ReportTemplate, token: Token) -> ReportTemplate:
    """The template with its owner unit: the one it names (which the token must cover) or
    the token's only scope."""
    if template.unit is None:
        if len(token.scopes) != 1:
            raise unprocessable(
                ("body", "unit"), "name the unit the template belongs to (the token has several)"
            )
        return template.model_copy(update={"unit": token.scopes[0]})
    if not token.covers(template.unit):
        raise HTTPException(403, f"this token may not create templates for unit {template.unit}")
    return template


FromQuery = Annotated[date | None, Query(alias="from", description="First day of a range")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day of a range")]
DayQuery = Annotated[date | None, Query(description="One day instead of the template's period")]


def build_unit_templates_router(
    catalogue: TemplateCatalogue, reader: RollupReader, auth: TokenAuth
) -> APIRouter:
    """``/v1/units/{code}/templates/...``: a template filled for a unit (read tokens whose
    scope covers the unit)."""
    router = APIRouter(
        prefix="/v1/units",
        tags=["templates"],
        dependencies=[Depends(auth.unit_scope(Role.READ))],
        responses=_AUTH_RESPONSES,
    )

    async def filled(
        code: str, template_id: str, day: date | None, first: date | None, last: date | None
    ) -> templates_report.FilledTable:
        unit = reader.unit(code)
        template = await catalogue.get(template_id)
        if template is None or (template.unit and not code.startswith(template.unit)):
            raise HTTPException(404, f"no template {template_id} for unit {code}")
        wrong = template.fills_for(code, unit.level)
        if wrong:
            raise unprocessable(("path", "code"), wrong)
        start, end = _period(template, reader, day, first, last)
        return await templates_report.fill(reader, template, code, start, end)

    @router.get("/{code}/templates", summary="The templates this unit can fill")
    async def fillable(code: str) -> dict[str, Any]:
        level = reader.unit(code).level
        entries = [
            e for e in await catalogue.entries() if e.template.fills_for(code, level) is None
        ]
        return {"unit": code, "templates": [entry_json(e) for e in entries]}

    @router.get(
        "/{code}/templates/{template_id}.xlsx",
        summary="A template filled for the unit, as Excel",
        response_class=Response,
        responses={200: {"content": {XLSX: {}}}, 404: {"description": "No such template"}},
    )
    async def as_xlsx(
        code: str,
        template_id: str,
        date: DayQuery = None,
        first: FromQuery = None,
        last: ToQuery = None,
    ) -> Response:
        table = await filled(code, template_id, date, first, last)
        return Response(
            templates_report.as_xlsx(table),
            media_type=XLSX,
            headers=_attachment(template_id, code, table, "xlsx"),
        )

    @router.get(
        "/{code}/templates/{template_id}.csv",
        summary="A template filled for the unit, as CSV",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}, 404: {"description": "No such template"}},
    )
    async def as_csv(
        code: str,
        template_id: str,
        date: DayQuery = None,
        first: FromQuery = None,
        last: ToQuery = None,
    ) -> Response:
        table = await filled(code, template_id, date, first, last)
        return Response(
            templates_report.as_csv(table),
            media_type="text/csv; charset=utf-8",
            headers=_attachment(template_id, code, table, "csv"),
        )

    return router


def _period(
    template: ReportTemplate,
    reader: RollupReader,
    day: date | None,
    first: date | None,
    last: date | None,
) -> tuple[date, date]:
    """The days to fill: ``date``, or ``from``/``to``, else the template's own period."""
    today = reader.calendar.today(datetime.now(UTC))
    if day is not None:
        if first is not None or last is not None:
            raise unprocessable(("query", "date"), "give date, or from and to, not both")
        day = readable(day, "date", today)
        return day, day
    if (first is None) != (last is None):
        raise unprocessable(("query", "from" if first is None else "to"), "give from and to")
    if first is None or last is None:
        return days_of(template.period, today)
    first, last = readable(first, "from", today), readable(last, "to", today)
    try:
        check_range(first, last)
    except ValueError as exc:
        raise unprocessable(("query", "to"), str(exc)) from None
    return first, last


def _attachment(
    template_id: str, code: str, table: templates_report.FilledTable, suffix: str
) -> dict[str, str]:
    when = f"{table.first}" if table.first == table.last else f"{table.first}_{table.last}"
    name = f"{template_id}-{code}-{when}.{suffix}"
    return {"Content-Disposition": f'attachment; filename="{name}"'}
