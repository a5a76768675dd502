"""Silences: the units they cover, who made them (token) and who expired them, and when;
regular-expression matchers become globs or are expired.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from zhibao_shared.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("units", sa.Text()),
    ("created_by_token", sa.String(64)),
    ("expired_at", UtcDateTime()),
    ("expired_by", sa.String(64)),
    ("expired_by_token", sa.String(64)),
)
UNIT_LABELS = ("unit", "community", "street", "district", "city")
#: A regular expression that is only literal text and ``.*`` / ``.`` says what a glob says.
_SIMPLE = re.compile(r"^(?:\.\*|\.|[A-Za-z0-9_\-:/ ]|[^\x00-\x7f])*$")
EXPIRED_BY = "migration 0006"


def upgrade() -> None:
    """Add the columns (a fresh database has them from revision 0003), then rewrite old rows.

    A regular expression of literals, ``.`` and ``.*`` becomes the equivalent glob; any
    other one cannot be evaluated safely, so its silence is expired now (its alerts
    notify again: an alerting system fails open).
    """
    bind = op.get_bind()
    present = {c["name"] for c in sa.inspect(bind).get_columns("silences")}
    for name, kind in COLUMNS:
        if name not in present:
            op.add_column("silences", sa.Column(name, kind, nullable=True))
    table = sa.table(
        "silences",
        sa.column("id", sa.Integer()),
        sa.column("matchers", sa.Text()),
        sa.column("ends_at", UtcDateTime()),
        *(sa.column(name, kind) for name, kind in COLUMNS),
    )
    now = datetime.now(UTC)
    for row in bind.execute(sa.select(table.c.id, table.c.matchers, table.c.ends_at)).all():
        bind.execute(table.update().where(table.c.id == row.id).values(**_rewritten(row, now)))


def _rewritten(row: Any, now: datetime) -> dict[str, Any]:
    """The new column values of one stored silence."""
    matchers: list[dict[str, Any]] = json.loads(row.matchers)
    units = [m["value"] for m in matchers if m.get("name") in UNIT_LABELS and not m.get("is_regex")]
    values: dict[str, Any] = {"units": json.dumps(units)}
    converted = [_as_glob(m) for m in matchers]
    if all(m is not None for m in converted):
        values["matchers"] = json.dumps(converted)
    else:
        values.update(expired_at=now, expired_by=EXPIRED_BY)
        if row.ends_at > now:
            values["ends_at"] = now
    return values


def _as_glob(matcher: dict[str, Any]) -> dict[str, Any] | None:
    """The matcher without ``is_regex`` (a simple regex as a glob); None when impossible."""
    plain = {k: v for k, v in matcher.items() if k != "is_regex"}
    if not matcher.get("is_regex"):
        return plain
    value = str(matcher.get("value", ""))
    if not _SIMPLE.match(value) or "*" in value.replace(".*", ""):
        return None
    return {**plain, "value": value.replace(".*", "*").replace(".", "?"), "is_glob": True}


def downgrade() -> None:
    """Drop the columns (globs stay globs: older versions would read them as literals)."""
    with op.batch_alter_table("silences") as batch:
        for name, _kind in COLUMNS:
            batch.drop_column(name)
