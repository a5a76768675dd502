"""People who answer: the person of the personal token that acknowledged, resolved or
silenced, next to the token's name (``alerts.acknowledged_by_person``,
``alerts.resolved_by``, ``alerts.resolved_by_person``, ``alert_timeline.person``,
``silences.created_by_person``, ``silences.expired_by_person``).

Existing rows keep null: they were made with tokens that named nobody.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zhibao_alerts.tables import PERSON_LENGTH

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: table -> (column, type) added by this revision
COLUMNS: dict[str, tuple[tuple[str, int], ...]] = {
    "alerts": (
        ("acknowledged_by_person", PERSON_LENGTH),
        ("resolved_by", 64),
        ("resolved_by_person", PERSON_LENGTH),
    ),
    "alert_timeline": (("person", PERSON_LENGTH),),
    "silences": (("created_by_person", PERSON_LENGTH), ("expired_by_person", PERSON_LENGTH)),
}


def upgrade() -> None:
    """Add the columns (a fresh database has them from the revision that made the table)."""
    inspector = sa.inspect(op.get_bind())
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name, length in columns:
            if name not in present:
                op.add_column(table, sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    """Drop them."""
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _length in columns:
                batch.drop_column(name)
