"""Silences.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from zhibao_alerts.tables import silences

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the silences table."""
    silences.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop it."""
    silences.drop(op.get_bind())
