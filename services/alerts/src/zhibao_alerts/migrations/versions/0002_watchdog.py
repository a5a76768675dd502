"""Isolation checks, daily reports and community activity (for the time-based rules).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from zhibao_alerts.tables import community_activity, daily_reports, isolations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables."""
    for table in (isolations, daily_reports, community_activity):
        table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop them."""
    for table in (isolations, daily_reports, community_activity):
        table.drop(op.get_bind())
