"""A corrected event's ``corrected_by`` leads with its decider's rank.

A case report's correction from a higher level now decides over any from below,
whatever their times (``zhibao_shared.events.correction_rank``), so the order key
stored with each corrected event is (rank, time, identity). The keys stored before
did not keep the correction's level: they take rank 0, the rank of a community's
correction, so a correction from a higher level decides over them, as it would have
over a community's, and one from a community still by time.

Revision ID: 0017_corrections_ranked
Revises: 0016_rejected_rows_indexed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_corrections_ranked"
down_revision = "0016_rejected_rows_indexed"
branch_labels = None
depends_on = None

#: The rank the keys stored before take, and its separator (as ``order_key`` writes it).
_PREFIX = "00 "


def upgrade() -> None:
    """Rank the stored keys 0."""
    op.execute(
        sa.text(
            "UPDATE applied_events SET corrected_by = :prefix || corrected_by"
            " WHERE corrected_by IS NOT NULL"
        ).bindparams(prefix=_PREFIX)
    )


def downgrade() -> None:
    """Take every key's rank off again (what an older version reads is (time, identity))."""
    op.execute(
        sa.text(
            "UPDATE applied_events SET corrected_by = substr(corrected_by, :start)"
            " WHERE corrected_by IS NOT NULL"
        ).bindparams(start=len(_PREFIX) + 1)
    )
