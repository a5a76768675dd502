"""Initial schema: alerts, timeline, notification outbox, dedup keys, fevers, daily counts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from zhibao_alerts.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables as they were at revision 0001."""
    # The first revision mirrors the table definitions; later revisions alter explicitly.
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    """Drop everything."""
    metadata.drop_all(op.get_bind())
