"""Counter totals: each unit's running total of every summed metric over all its days.

Reads of stocks and cumulative figures subtract the few counter rows after the day
asked for from the total instead of summing the whole history. The totals are filled
from the counters as they stand.

Revision ID: 0009_counter_totals
Revises: 0008_audit_trail
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_counter_totals"
down_revision = "0010_place_counters"
branch_labels = None
depends_on = None

#: ``metrics.SUMMED`` when this revision was written (a migration does not follow the code).
SUMMED = (
    "current_suspected",
    "current_confirmed",
    "current_asymptomatic",
    "current_close_contact",
    "in_isolation",
    "isolations_overdue",
    "new_confirmed",
    "new_recovered",
    "new_deceased",
)


def upgrade() -> None:
    """Create the table and fill it from the counters."""
    op.create_table(
        "counter_totals",
        sa.Column("unit", sa.String(12), primary_key=True),
        sa.Column("metric", sa.String(48), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    counters = sa.table("counters", sa.column("unit"), sa.column("metric"), sa.column("value"))
    totals = sa.table("counter_totals", sa.column("unit"), sa.column("metric"), sa.column("value"))
    op.execute(
        totals.insert().from_select(
            ["unit", "metric", "value"],
            sa.select(counters.c.unit, counters.c.metric, sa.func.sum(counters.c.value))
            .where(counters.c.metric.in_(SUMMED))
            .group_by(counters.c.unit, counters.c.metric),
        )
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("counter_totals")
