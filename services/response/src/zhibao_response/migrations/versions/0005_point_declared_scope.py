"""A point keeps the scope of the command centre that declared it: only one at that level
or above may lift it.

Revision 0003 creates ``points`` from the current table definition, so a new database
has the column already; an existing one gets it here (null for the points declared
before, which any command centre above their community may lift, as before).

Revision ID: 0005_point_declared_scope
Revises: 0004_need_task_urgency
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_point_declared_scope"
down_revision = "0004_need_task_urgency"
branch_labels = None
depends_on = None


def _has_scope() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("points")
    return any(column["name"] == "declared_scope" for column in columns)


def upgrade() -> None:
    """Add the nullable ``points.declared_scope`` where it is missing."""
    if not _has_scope():
        with op.batch_alter_table("points") as batch:
            batch.add_column(sa.Column("declared_scope", sa.String(12)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("points") as batch:
        batch.drop_column("declared_scope")
