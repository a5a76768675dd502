"""Report templates created through the API: stored as their JSON, read back whole.

The table is not derived from the event stream: a rebuild keeps it.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from pydantic import ValidationError
from sqlalchemy import Column, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain.templates import STORED, ReportTemplate
from zhibao_aggregator.storage.tables import metadata
from zhibao_shared.db import UtcDateTime

log = structlog.get_logger(__name__)

report_templates = Table(
    "report_templates",
    metadata,
    Column("id", String(64), primary_key=True),
    #: The owner unit (NULL: every unit); the body holds it too.
    Column("unit", String(12)),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
)


async def store_template(
    conn: AsyncConnection, template: ReportTemplate, at: datetime, token_id: str
) -> None:
    """Store a new template (an id stored already raises ``IntegrityError``)."""
    row = {
        "id": template.id,
        "unit": template.unit,
        "body": template.model_dump_json(by_alias=True, exclude_none=True),
        "created_at": at,
        "created_by": token_id,
    }
    await conn.execute(report_templates.insert().values(row))


async def stored_templates(conn: AsyncConnection) -> list[tuple[ReportTemplate, datetime, str]]:
    """Every stored template with when and by which token it was created, by id."""
    t = report_templates.c
    rows = await conn.execute(select(t.id, t.body, t.created_at, t.created_by).order_by(t.id))
    found = [(_parsed(i, body), at, by) for i, body, at, by in rows.all()]
    return [(template, at, by) for template, at, by in found if template is not None]


async def stored_template(conn: AsyncConnection, template_id: str) -> ReportTemplate | None:
    """One stored template, or None."""
    body = await conn.scalar(
        select(report_templates.c.body).where(report_templates.c.id == template_id)
    )
    return None if body is None else _parsed(template_id, body)


def _parsed(template_id: str, body: str) -> ReportTemplate | None:
    """A stored template, or None (logged) if this version no longer accepts it (e.g. a
    figure that was renamed): one stale template must not break the others. The rules
    on its texts (bare placeholders, no formula-like beginning) are not applied again:
    what an earlier version stored comes out literally (see ``templates.STORED``)."""
    try:
        return ReportTemplate.model_validate_json(body, context=STORED)
    except ValidationError as exc:
        log.warning("stored_template_invalid", template=template_id, errors=exc.error_count())
        return None
