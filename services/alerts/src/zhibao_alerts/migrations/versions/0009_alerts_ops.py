"""Scheduled alerts: ``alerts.next_action_at`` (indexed), ``alerts.repeat_minutes``, an
index on (rule, state), and ``community_watch`` (since when each community is watched).

The dispatcher reads only the alerts whose next action is due instead of every open
alert several times a second; a silent community's alert reminds at its own interval.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import metadata
from zhibao_shared.db import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_alerts_next_action_at"
RULE_STATE = "ix_alerts_rule_state"


def upgrade() -> None:
    """Add the columns (a fresh database has them from revision 0001) and schedule every
    open alert for the next pass, which computes its real next action."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("community_watch"):
        metadata.create_all(bind, tables=[metadata.tables["community_watch"]])
    columns = {c["name"] for c in inspector.get_columns("alerts")}
    if "next_action_at" not in columns:
        op.add_column("alerts", sa.Column("next_action_at", UtcDateTime(), nullable=True))
    if "repeat_minutes" not in columns:
        op.add_column("alerts", sa.Column("repeat_minutes", sa.Float(), nullable=True))
    indexes = {i["name"] for i in inspector.get_indexes("alerts")}
    if INDEX not in indexes:
        op.create_index(INDEX, "alerts", ["next_action_at"])
    if RULE_STATE not in indexes:
        op.create_index(RULE_STATE, "alerts", ["rule", "state"])
    alerts = sa.table(
        "alerts", sa.column("state", sa.String), sa.column("next_action_at", UtcDateTime())
    )
    op.execute(
        alerts.update()
        .where(alerts.c.state.in_(("firing", "acknowledged")), alerts.c.next_action_at.is_(None))
        .values(next_action_at=datetime.now(UTC))
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("community_watch")
    op.drop_index(RULE_STATE, table_name="alerts")
    op.drop_index(INDEX, table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("repeat_minutes")
        batch.drop_column("next_action_at")
