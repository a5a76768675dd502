"""All report templates a deployment knows: its template files and those created through
the API (stored in the database, so every instance and a restart see them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain.templates import ReportTemplate
from zhibao_aggregator.storage import templates as stored


class TemplateExists(ValueError):
    """The id is taken (by a file or a stored template)."""


@dataclass(frozen=True)
class Entry:
    """A template and where it comes from: a file, or the API (when, by which token)."""

    template: ReportTemplate
    source: str
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass
class TemplateCatalogue:
    """Looks templates up by id (files first) and stores new ones."""

    engine: AsyncEngine
    files: Mapping[str, ReportTemplate]

    async def entries(self) -> list[Entry]:
        """Every template: the files', then the stored ones (a file's id shadows a stored one)."""
        out = [Entry(t, "file") for _, t in sorted(self.files.items())]
        async with self.engine.connect() as conn:
            for template, at, by in await stored.stored_templates(conn):
                if template.id not in self.files:
                    out.append(Entry(template, "api", at, by))
        return out

    async def visible_to(self, scopes: Sequence[str]) -> list[Entry]:
        """The templates a token with these scopes may see."""
        return [e for e in await self.entries() if e.template.visible_to(scopes)]

    async def get(self, template_id: str) -> ReportTemplate | None:
        """The template with this id, or None."""
        if template_id in self.files:
            return self.files[template_id]
        async with self.engine.connect() as conn:
            return await stored.stored_template(conn, template_id)

    async def create(self, template: ReportTemplate, token_id: str) -> datetime:
        """Store a new template; :class:`TemplateExists` when its id is taken."""
        if template.id in self.files:
            raise TemplateExists(template.id)
        at = datetime.now(UTC)
        try:
            async with self.engine.begin() as conn:
                await stored.store_template(conn, template, at, token_id)
        except IntegrityError as exc:
            raise TemplateExists(template.id) from exc
        return at
