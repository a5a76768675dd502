"""Initial schema: counters, applied dedup keys, person histories, daily reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "counters",
        sa.Column("unit", sa.String(12), primary_key=True),
        sa.Column("metric", sa.String(48), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_counters_unit_day", "counters", ["unit", "day"])
    op.create_table(
        "applied_events",
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("stream_sequence", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "case_facts",
        sa.Column("pid", sa.String(32), primary_key=True),
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("community", sa.String(12), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
    )
    op.create_table(
        "isolation_facts",
        sa.Column("pid", sa.String(32), primary_key=True),
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("community", sa.String(12), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
    )
    op.create_table(
        "daily_reports",
        sa.Column("community", sa.String(12), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("zero", sa.Boolean, nullable=False),
    )
    op.create_index("ix_daily_reports_day", "daily_reports", ["day", "community"])


def downgrade() -> None:
    """Drop the tables."""
    for table in ("daily_reports", "isolation_facts", "case_facts", "applied_events", "counters"):
        op.drop_table(table)
