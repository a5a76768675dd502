"""An index for the cluster counts (fevers of a place within a window).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "ix_fevers_place_at"


def upgrade() -> None:
    """Index ``fevers`` by community, place and time.

    Revision 0001 creates tables from the current metadata, so a fresh database
    already has the index; only databases made before this revision get it added.
    """
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("fevers")}
    if INDEX not in indexes:
        op.create_index(INDEX, "fevers", ["community", "place", "at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index(INDEX, table_name="fevers")
