"""A need's task keeps its urgency (normal, urgent), announced with every task message.

Revision 0001 creates ``tasks`` from the current table definition, so a new database
has the column already; an existing one gets it here.

Revision ID: 0004_need_task_urgency
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_need_task_urgency"
down_revision = "0003"
branch_labels = None
depends_on = None


def _has_urgency() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("tasks")
    return any(column["name"] == "urgency" for column in columns)


def upgrade() -> None:
    """Add the nullable ``tasks.urgency`` where it is missing."""
    if not _has_urgency():
        with op.batch_alter_table("tasks") as batch:
            batch.add_column(sa.Column("urgency", sa.String(8)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("urgency")
