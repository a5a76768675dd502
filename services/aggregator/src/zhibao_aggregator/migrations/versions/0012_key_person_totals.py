"""Key-person totals: each unit's registered persons per category, at every level.

Rollups read their ``key_persons`` counts from these totals instead of counting the
register under the unit. The totals are filled from the register as it stands.

Revision ID: 0012_key_person_totals
Revises: 0011_counter_totals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_key_person_totals"
down_revision = "0011_counter_totals"
branch_labels = None
depends_on = None

#: The code lengths of the levels when this revision was written (province to community).
CODE_LENGTHS = (2, 4, 6, 9, 12)


def upgrade() -> None:
    """Create the table and fill it from the register."""
    op.create_table(
        "key_person_totals",
        sa.Column("unit", sa.String(12), primary_key=True),
        sa.Column("category", sa.String(20), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    fill_totals(op.get_bind())


def fill_totals(conn: sa.Connection) -> None:
    """Count the registered rows of ``key_persons`` under every unit, level by level."""
    register = sa.table(
        "key_persons",
        sa.column("community", sa.String),
        sa.column("category", sa.String),
        sa.column("registered", sa.Boolean),
    )
    totals = sa.table(
        "key_person_totals", sa.column("unit"), sa.column("category"), sa.column("value")
    )
    for length in CODE_LENGTHS:
        unit = sa.func.substr(register.c.community, 1, length)
        counted = (
            sa.select(unit, register.c.category, sa.func.count())
            .where(
                register.c.registered.is_(True),
                sa.func.length(register.c.community) >= length,
            )
            .group_by(unit, register.c.category)
        )
        conn.execute(totals.insert().from_select(["unit", "category", "value"], counted))


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("key_person_totals")
