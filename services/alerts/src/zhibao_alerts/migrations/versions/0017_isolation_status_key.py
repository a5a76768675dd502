"""An isolation keeps the identity of the start or end that decided it: of two at the
same event time the later identity decides, as in the aggregator, whatever the order they
arrive in.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``isolations.status_key`` where it is missing."""
    columns = sa.inspect(op.get_bind()).get_columns("isolations")
    if not any(c["name"] == "status_key" for c in columns):
        with op.batch_alter_table("isolations") as batch:
            batch.add_column(sa.Column("status_key", sa.String(400)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("isolations") as batch:
        batch.drop_column("status_key")
