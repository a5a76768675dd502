"""The audit trail's read model: one row per event line, tally and action record.

Revision ID: 0008_audit_trail
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_audit_trail"
down_revision = "0007_corrections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table and its indexes."""
    text = sa.String(200)
    op.create_table(
        "audit_trail",
        sa.Column("origin", sa.String(8), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("item", sa.Integer, primary_key=True),
        sa.Column("sort_key", sa.String(80), nullable=False, unique=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("service", text),
        sa.Column("type", text),
        sa.Column("outcome", text),
        sa.Column("code", text),
        sa.Column("status", sa.Integer),
        sa.Column("channel", text),
        sa.Column("token", text),
        sa.Column("token_name", text),
        sa.Column("person", text),
        sa.Column("unit", sa.String(12)),
        sa.Column("event_id", text),
        sa.Column("event_source", text),
        sa.Column("event_time", sa.DateTime(timezone=True)),
        sa.Column("target", text),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_trail_unit", "audit_trail", ["unit", "sort_key"])
    op.create_index("ix_audit_trail_rejected", "audit_trail", ["outcome", "day", "unit"])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("audit_trail")
