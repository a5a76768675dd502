"""The audit trail keeps an event's source whole: the contract admits 256 characters.

Revision ID: 0014_audit_event_source_length
Revises: 0013_rebuild_in_progress
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_audit_event_source_length"
down_revision = "0013_rebuild_in_progress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen ``audit_trail.event_source`` from 200 to 256 characters (PostgreSQL: SQLite
    does not enforce a VARCHAR's length, and altering would copy the whole trail)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    with op.batch_alter_table("audit_trail") as batch:
        batch.alter_column("event_source", type_=sa.String(256), existing_type=sa.String(200))


def downgrade() -> None:
    """Narrow it again (PostgreSQL refuses if a longer source is stored)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    with op.batch_alter_table("audit_trail") as batch:
        batch.alter_column("event_source", type_=sa.String(200), existing_type=sa.String(256))
