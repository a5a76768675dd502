"""A need's task keeps its urgency (normal, urgent), announced with every task message.

Revision 0001 creates ``tasks`` from the current table definition, so a new database
has the column already; an existing one gets it here.

Revision ID: 0004_need_task_urgency
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0004_need_task_urgency"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``tasks.urgency`` where it is missing."""
    add_if_missing("tasks", sa.Column("urgency", sa.String(8)))


def downgrade() -> None:
    """Drop it."""
    drop("tasks", "urgency")
