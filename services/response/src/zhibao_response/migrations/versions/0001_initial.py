"""Initial schema: declarations, tasks, their history and the bus outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from zhibao_response.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

REVISION_0001 = ("declarations", "tasks", "task_history", "outbox")


def upgrade() -> None:
    """Create the tables of revision 0001 (later revisions add theirs explicitly)."""
    tables = [metadata.tables[name] for name in REVISION_0001]
    metadata.create_all(op.get_bind(), tables=tables)


def downgrade() -> None:
    """Drop everything."""
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in REVISION_0001])
