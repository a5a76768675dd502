"""Key persons and grids (issue 17): ``key_persons`` (who is watched for want of
contact, and when they are due), ``epidemic_points`` (the response service's points, by
registered place), ``declared_levels`` (the level in force per unit), and
``alerts.grid`` (the grid whose worker an alert reaches first).

Existing alerts keep a null grid: they are about no registered place.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import PLACE_ID_LENGTH, metadata

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("key_persons", "epidemic_points", "declared_levels")


def upgrade() -> None:
    """Create the tables and add the column (when not there yet)."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    missing = [metadata.tables[name] for name in TABLES if not inspector.has_table(name)]
    metadata.create_all(bind, tables=missing)
    if "grid" not in {c["name"] for c in inspector.get_columns("alerts")}:
        op.add_column("alerts", sa.Column("grid", sa.String(PLACE_ID_LENGTH), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("grid")
    for name in TABLES:
        op.drop_table(name)
