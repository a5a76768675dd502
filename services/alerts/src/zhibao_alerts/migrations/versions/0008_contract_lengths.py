"""Alert windows and keys long enough for every value the contract admits.

A cluster's window names its place: a compound and a building label of up to 64
characters each, then the day (up to 140 characters), which did not fit in 96.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen ``alerts.window`` and ``alerts.dedup_key`` (SQLite does not enforce lengths)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("alerts", "window", type_=sa.String(160), existing_nullable=False)
    op.alter_column("alerts", "dedup_key", type_=sa.String(256), existing_nullable=False)


def downgrade() -> None:
    """Narrow them again (fails if longer values are stored)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("alerts", "dedup_key", type_=sa.String(200), existing_nullable=False)
    op.alter_column("alerts", "window", type_=sa.String(96), existing_nullable=False)
