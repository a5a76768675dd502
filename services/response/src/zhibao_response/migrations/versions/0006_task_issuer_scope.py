"""A task keeps the level of the command centre that issued it: one above the community
changes its state only from that level up (a street may not close its district's tasks).

Revision 0001 creates ``tasks`` from the current table definition, so a new database
has the column already; an existing one gets it here (null for the tasks issued
before, which any command centre above their community may change, as before).

Revision ID: 0006_task_issuer_scope
Revises: 0005_point_declared_scope
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_task_issuer_scope"
down_revision = "0005_point_declared_scope"
branch_labels = None
depends_on = None


def _has_scope() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("tasks")
    return any(column["name"] == "issuer_scope" for column in columns)


def upgrade() -> None:
    """Add the nullable ``tasks.issuer_scope`` where it is missing."""
    if not _has_scope():
        with op.batch_alter_table("tasks") as batch:
            batch.add_column(sa.Column("issuer_scope", sa.String(12)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("issuer_scope")
