"""Event time and persons: isolation status time, fevers' persons and cluster windows,
units' first days, persons counted per day and persons alerted on.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import case_persons, person_days, unit_first_days

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_TABLES = (unit_first_days, person_days, case_persons)
NEW_COLUMNS = {
    "isolations": (sa.Column("status_at", sa.DateTime(timezone=True)),),
    "fevers": (sa.Column("person", sa.String(32)), sa.Column("cluster_day", sa.Date)),
}


def upgrade() -> None:
    """Add the columns and tables; a unit's first day is backfilled from its counters.

    Revision 0001 creates tables from the current metadata, so a fresh database
    already has the new columns; only databases made before this revision get them.
    """
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table, columns in NEW_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        with op.batch_alter_table(table) as batch:
            for column in columns:
                if column.name not in present:
                    batch.add_column(column)
    for new in NEW_TABLES:
        new.create(bind, checkfirst=True)
    op.execute(
        "INSERT INTO unit_first_days (unit, day) SELECT unit, MIN(day) FROM daily_counts "
        "WHERE unit NOT IN (SELECT unit FROM unit_first_days) GROUP BY unit"
    )


def downgrade() -> None:
    """Drop them."""
    for new in NEW_TABLES:
        new.drop(op.get_bind())
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
