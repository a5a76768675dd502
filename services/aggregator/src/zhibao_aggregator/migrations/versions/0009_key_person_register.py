"""The key-person register (重点人群) and the needs' tasks with their persons.

Revision ID: 0009_key_person_register
Revises: 0008_audit_trail
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_key_person_register"
down_revision = "0008_audit_trail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the register and the needs' tasks."""
    when = sa.DateTime(timezone=True)
    op.create_table(
        "key_persons",
        sa.Column("community", sa.String(12), primary_key=True),
        sa.Column("pid", sa.String(32), primary_key=True),
        sa.Column("category", sa.String(20), primary_key=True),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("compound_id", sa.String(26)),
        sa.Column("building_id", sa.String(26)),
        sa.Column("grid_id", sa.String(26)),
        sa.Column("compound", sa.String(64)),
        sa.Column("building", sa.String(64)),
        sa.Column("grid", sa.String(64)),
        sa.Column("since", when),
        sa.Column("changed_at", when, nullable=False),
        sa.Column("changed_key", sa.String(400), nullable=False),
        sa.Column("last_contact", when),
    )
    op.create_index("ix_key_persons_pid", "key_persons", ["pid"])
    op.create_table(
        "need_tasks",
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("community", sa.String(12), nullable=False),
        sa.Column("pid", sa.String(32), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        sa.Column("raised_at", when, nullable=False),
    )
    op.create_index("ix_need_tasks_community_pid", "need_tasks", ["community", "pid"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("need_tasks")
    op.drop_table("key_persons")
