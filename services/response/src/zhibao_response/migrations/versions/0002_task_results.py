"""Task results applied from the events stream (idempotency and their details).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from zhibao_response.tables import metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REVISION_0002 = ("task_results",)


def upgrade() -> None:
    """Create the task_results table."""
    metadata.create_all(op.get_bind(), tables=[metadata.tables[n] for n in REVISION_0002])


def downgrade() -> None:
    """Drop it."""
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[n] for n in REVISION_0002])
