"""A corrected event keeps the rank of the correction that decided it.

A case report's correction from a higher level now decides over any from below,
whatever their times (``zhibao_shared.events.correction_rank``). ``corrected_by`` stays
the decider's (time, identity), as versions before read and write it; the new
``ranked_by`` keeps the rank with it, so an earlier version running on this database
(rolled back, or during a rolling update) reads and writes ``corrected_by`` as before,
and a rank it leaves behind for another decider is not believed (rank 0). Events
decided before take rank 0, the rank of a community's correction: a correction from a
higher level decides over them, one from a community still by time.

Revision ID: 0017_corrections_ranked
Revises: 0016_rejected_rows_indexed
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0017_corrections_ranked"
down_revision = "0016_rejected_rows_indexed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``ranked_by``."""
    add_if_missing("applied_events", sa.Column("ranked_by", sa.String(460)))


def downgrade() -> None:
    """Drop it."""
    drop("applied_events", "ranked_by")
