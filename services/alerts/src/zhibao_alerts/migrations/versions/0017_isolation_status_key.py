"""An isolation keeps the identity of the start or end that decided it: of two at the
same event time the later identity decides, as in the aggregator, whatever the order they
arrive in.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``isolations.status_key`` where it is missing."""
    add_if_missing("isolations", sa.Column("status_key", sa.String(400)))


def downgrade() -> None:
    """Drop it."""
    drop("isolations", "status_key")
