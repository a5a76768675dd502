"""Event records keep the rank of the correction that decided them.

A case report's correction from a higher level now decides over any from below,
whatever their times (``zhibao_shared.events.correction_rank``). ``decided_at`` and
``decided_by`` stay as versions before read and write them; the new ``ranked_by`` keeps
the rank with the decider's identity, so a rank an earlier version (rolled back, or
during a rolling update) leaves behind for another decider is not believed (rank 0).
Revision 0011 creates the table from the current definition, so a new database has the
column already; an existing one gets it here, null for the records decided before,
which rank as a community's correction: one from a higher level decides over them, one
from a community still by time.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``ranked_by`` where it is missing."""
    add_if_missing("event_records", sa.Column("ranked_by", sa.String(410)))


def downgrade() -> None:
    """Drop it."""
    drop("event_records", "ranked_by")
