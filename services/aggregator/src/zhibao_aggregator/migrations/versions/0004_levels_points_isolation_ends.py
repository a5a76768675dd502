"""Declared levels, epidemic points, case places and isolation ends.

Case facts keep their compound and building (clusters, epidemic points); isolation facts
their kind and planned end (expected releases, overdue isolations); the response
service's level and point messages get tables of their own.

Revision ID: 0004
Revises: 0003_task_rollups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003_task_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and tables."""
    with op.batch_alter_table("case_facts") as batch:
        batch.add_column(sa.Column("compound", sa.String(64)))
        batch.add_column(sa.Column("building", sa.String(64)))
    with op.batch_alter_table("isolation_facts") as batch:
        batch.add_column(sa.Column("kind", sa.String(12)))
        batch.add_column(sa.Column("until", sa.Date))
    op.create_index("ix_case_facts_time", "case_facts", ["classification", "time"])
    op.create_index("ix_case_facts_place", "case_facts", ["community", "compound"])
    op.create_table(
        "level_declarations",
        sa.Column("declaration", sa.String(32), primary_key=True),
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("level", sa.String(8)),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_level_declarations_unit", "level_declarations", ["unit", "number"])
    op.create_table(
        "epidemic_points",
        sa.Column("point", sa.String(32), primary_key=True),
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("compound", sa.String(64)),
        sa.Column("building", sa.String(64)),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(200), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True)),
        sa.Column("lifted_by", sa.String(200)),
    )
    op.create_index("ix_epidemic_points_unit", "epidemic_points", ["unit"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("epidemic_points")
    op.drop_table("level_declarations")
    op.drop_index("ix_case_facts_place", "case_facts")
    op.drop_index("ix_case_facts_time", "case_facts")
    with op.batch_alter_table("isolation_facts") as batch:
        batch.drop_column("until")
        batch.drop_column("kind")
    with op.batch_alter_table("case_facts") as batch:
        batch.drop_column("building")
        batch.drop_column("compound")
