"""The event records' person and day indexes hold only records that count.

Every applied event is recorded, most of them screenings that count towards nothing
(``data`` null). Such records are only ever looked up by their key: the lookups by
person and by (community, type, day) ask for records that count. Indexing every record
wrote two index entries more an event, at scattered places of indexes that grow by one
entry an event; partial indexes (``WHERE data IS NOT NULL``) leave them out.

On PostgreSQL the index is built by a plain ``CREATE INDEX`` in the migration's
transaction: writes to the table wait for the build (seconds for a few million rows),
so instances of the previous version still running stall for that long, then go on.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_event_records_pid": ["pid"],
    "ix_event_records_community_day": ["community", "type", "day"],
}


def upgrade() -> None:
    """Re-create the two indexes over the records that count."""
    _recreate(where="data IS NOT NULL")


def downgrade() -> None:
    """Re-create them over every record."""
    _recreate(where=None)


def _recreate(where: str | None) -> None:
    for name, columns in _INDEXES.items():
        op.drop_index(name, table_name="event_records")
        if where is None:
            op.create_index(name, "event_records", columns)
        else:
            condition = sa.text(where)
            op.create_index(
                name, "event_records", columns, sqlite_where=condition, postgresql_where=condition
            )
