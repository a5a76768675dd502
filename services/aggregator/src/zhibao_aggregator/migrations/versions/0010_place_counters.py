"""Registered places: counters per compound, building and grid; case facts' place ids.

``place_counters`` holds per place (its registered id; a community's code for its
``unregistered`` count) the same per-day values as ``counters`` per unit.
``case_facts`` gains the ids of the registered compound, building and grid intake
matched each report to, so clusters and epidemic points key on them. Events applied
before this revision have no place figures until ``zhibao aggregator rebuild``.

Revision ID: 0009_place_counters
Revises: 0008_audit_trail
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_place_counters"
down_revision = "0009_key_person_register"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table and add the columns."""
    op.create_table(
        "place_counters",
        sa.Column("place", sa.String(32), primary_key=True),
        sa.Column("metric", sa.String(48), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("case_facts") as batch:
        batch.add_column(sa.Column("compound_id", sa.String(32)))
        batch.add_column(sa.Column("building_id", sa.String(32)))
        batch.add_column(sa.Column("grid_id", sa.String(32)))
    op.create_index("ix_case_facts_compound_id", "case_facts", ["community", "compound_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_case_facts_compound_id", "case_facts")
    with op.batch_alter_table("case_facts") as batch:
        batch.drop_column("grid_id")
        batch.drop_column("building_id")
        batch.drop_column("compound_id")
    op.drop_table("place_counters")
