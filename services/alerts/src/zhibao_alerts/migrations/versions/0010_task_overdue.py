"""Overdue tasks: ``task_alerts``, the tasks of each ``task_overdue`` alert.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import metadata

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("task_alerts"):
        metadata.create_all(bind, tables=[metadata.tables["task_alerts"]])


def downgrade() -> None:
    """Drop it."""
    op.drop_table("task_alerts")
