"""Report templates created through the API (``POST /v1/templates``).

Revision ID: 0005_report_templates
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_report_templates"
down_revision = "0005_quality_declared_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table of report templates."""
    op.create_table(
        "report_templates",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("unit", sa.String(12)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    """Drop the table of report templates."""
    op.drop_table("report_templates")
