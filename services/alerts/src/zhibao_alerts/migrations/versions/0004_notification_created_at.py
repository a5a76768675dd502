"""When each notification was queued (for the delivery latency metric).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_shared.db import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``notifications.created_at`` (null for rows queued before this revision).

    Revision 0001 creates tables from the current metadata, so a fresh database
    already has the column; only databases made before this revision get it added.
    """
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("notifications")}
    if "created_at" in columns:
        return
    op.add_column("notifications", sa.Column("created_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("created_at")
