"""Event records and held corrections keep their reporter's level: a correction applies
to an event only from the level of the event's reporter up.

Revision 0011 creates both tables from the current definitions, so a new database has
the columns already; an existing one gets them here (null for the rows written before,
which any correction may change, as before).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("event_records", "held_corrections")


def upgrade() -> None:
    """Add the nullable ``level`` where it is missing."""
    for table in TABLES:
        add_if_missing(table, sa.Column("level", sa.String(12)))


def downgrade() -> None:
    """Drop it."""
    for table in TABLES:
        drop(table, "level")
