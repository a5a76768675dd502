"""Daily closes keep the counts they declare (the quality scorecard compares them).

Revision ID: 0005_quality_declared_counts
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_quality_declared_counts"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    "declared_screenings",
    "declared_fevers",
    "declared_new_suspected",
    "declared_new_confirmed",
    "declared_in_isolation",
)


def upgrade() -> None:
    """Add a nullable column per declarable figure."""
    with op.batch_alter_table("daily_reports") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("daily_reports") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
