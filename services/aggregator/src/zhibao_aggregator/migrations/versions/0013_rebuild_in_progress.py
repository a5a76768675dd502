"""Rebuild marker: a row while ``zhibao aggregator rebuild`` runs.

A rebuild holds counter changes in memory across batches; the service refuses to
start on a database whose rebuild did not finish.

Revision ID: 0013_rebuild_in_progress
Revises: 0012_key_person_totals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_rebuild_in_progress"
down_revision = "0012_key_person_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the (empty) table."""
    op.create_table(
        "rebuild_in_progress",
        sa.Column("started_at", sa.DateTime(timezone=True), primary_key=True),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("rebuild_in_progress")
