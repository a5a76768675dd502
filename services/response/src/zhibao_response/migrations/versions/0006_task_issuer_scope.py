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

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0006_task_issuer_scope"
down_revision = "0005_point_declared_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``tasks.issuer_scope`` where it is missing."""
    add_if_missing("tasks", sa.Column("issuer_scope", sa.String(12)))


def downgrade() -> None:
    """Drop it."""
    drop("tasks", "issuer_scope")
