"""Task rollups: the task messages applied and each task's spans per community.

Revision ID: 0003_task_rollups
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_task_rollups"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the task tables."""
    op.create_table(
        "task_facts",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("event", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("from_unit", sa.String(12), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "task_spans",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_task_spans_unit", "task_spans", ["unit", "opened_at"])
    op.create_index("ix_task_spans_closed_at", "task_spans", ["closed_at"])


def downgrade() -> None:
    """Drop the task tables."""
    op.drop_table("task_spans")
    op.drop_table("task_facts")
