"""A task issued under an ``Idempotency-Key`` keeps its request's fingerprint: a retry
is told from another request by everything it asked for (unit, contact, note
included), not only by what the task row shows.

Revision 0001 creates ``tasks`` from the current table definition, so a new database
has the column already; an existing one gets it here (null for the tasks issued
before, compared by kind, due time, person and compound, as before).

Revision ID: 0007_task_request_fingerprint
Revises: 0006_task_issuer_scope
"""

from __future__ import annotations

import sqlalchemy as sa

from zhibao_shared.migration_columns import add_if_missing, drop

revision = "0007_task_request_fingerprint"
down_revision = "0006_task_issuer_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``tasks.request_fingerprint`` where it is missing."""
    add_if_missing("tasks", sa.Column("request_fingerprint", sa.String(64)))


def downgrade() -> None:
    """Drop it."""
    drop("tasks", "request_fingerprint")
