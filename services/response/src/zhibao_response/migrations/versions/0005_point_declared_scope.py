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

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0005_point_declared_scope"
down_revision = "0004_need_task_urgency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``points.declared_scope`` where it is missing."""
    add_if_missing("points", sa.Column("declared_scope", sa.String(12)))


def downgrade() -> None:
    """Drop it."""
    drop("points", "declared_scope")
