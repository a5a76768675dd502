"""Corrections (issue 16): ``event_records``, the applied events as they count now, and
``held_corrections``, corrections waiting for their event.

Events applied before this revision have no record: a correction of one of them is held
(a rebuild from the stream gives every event its record).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import metadata

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NEW_TABLES = ("event_records", "held_corrections")


def upgrade() -> None:
    """Create the tables (as they are in the metadata; none of their rows is derived)."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    missing = [metadata.tables[name] for name in NEW_TABLES if not inspector.has_table(name)]
    metadata.create_all(bind, tables=missing)


def downgrade() -> None:
    """Drop them."""
    for name in reversed(NEW_TABLES):
        op.drop_table(name)
