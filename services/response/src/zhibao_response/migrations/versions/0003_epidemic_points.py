"""Epidemic points (疫点) and the tasks their measures issued.

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from zhibao_response.point_tables import POINT_TABLES
from zhibao_response.tables import metadata

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables of epidemic points."""
    metadata.create_all(op.get_bind(), tables=[metadata.tables[n] for n in POINT_TABLES])


def downgrade() -> None:
    """Drop them."""
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in POINT_TABLES])
