"""Corrections: each applied event's footprint, and corrections held for their original.

``applied_events`` gains ``effect`` (what the event counts by itself, so a correction
can take back exactly that) and ``corrected_by`` (the correction that decided it last);
``held_corrections`` keeps corrections that arrived before the event they correct.
Events applied before this revision have no footprint: a correction of one is ignored
(logged) until ``zhibao aggregator rebuild`` has replayed the stream.

Revision ID: 0005_corrections
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_corrections"
down_revision = "0006_report_templates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and the table."""
    with op.batch_alter_table("applied_events") as batch:
        batch.add_column(sa.Column("effect", sa.Text))
        batch.add_column(sa.Column("corrected_by", sa.String(450)))
    op.create_table(
        "held_corrections",
        sa.Column("dedup_key", sa.String(400), primary_key=True),
        sa.Column("corrected_key", sa.String(400), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_held_corrections_corrected", "held_corrections", ["corrected_key"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("held_corrections")
    with op.batch_alter_table("applied_events") as batch:
        batch.drop_column("corrected_by")
        batch.drop_column("effect")
