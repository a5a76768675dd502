"""The audit trail's rejection index holds only the rejected rows.

The trail stores one row per event of every submission, nearly all of them accepted;
the rejection counts (the data quality scorecard) read only the rejected rows of a
range of days. Indexed over (outcome, day, unit), every accepted event wrote an entry
that no query reads; the index is now over (day, unit) of the rejected rows alone
(``WHERE outcome = 'rejected'``).

On PostgreSQL the index is built by a plain ``CREATE INDEX`` in the migration's
transaction: writes to the table wait for the build (seconds for a few million rows),
so instances of the previous version still running stall for that long, then go on.

Revision ID: 0016_rejected_rows_indexed
Revises: 0015_counters_by_unit_day
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_rejected_rows_indexed"
down_revision = "0015_counters_by_unit_day"
branch_labels = None
depends_on = None

_NAME = "ix_audit_trail_rejected"
_REJECTED = "outcome = 'rejected'"


def upgrade() -> None:
    """Index (day, unit) of the rejected rows instead of (outcome, day, unit) of all."""
    op.drop_index(_NAME, table_name="audit_trail")
    where = sa.text(_REJECTED)
    op.create_index(
        _NAME, "audit_trail", ["day", "unit"], sqlite_where=where, postgresql_where=where
    )


def downgrade() -> None:
    """Index (outcome, day, unit) of every row again."""
    op.drop_index(_NAME, table_name="audit_trail")
    op.create_index(_NAME, "audit_trail", ["outcome", "day", "unit"])
