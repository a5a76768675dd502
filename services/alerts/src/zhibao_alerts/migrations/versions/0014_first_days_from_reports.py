"""Communities' first days from their daily reports, where none is on record.

The watchdog asks a community for a day's report only from its first day of data on
(``unit_first_days``). Revision 0007 filled that table from the fever and suspected
counters only, so a database from before it lacks most communities: without this, a
community's next event would set its first day to that day and let it off the report of
the day before. A community that closed a day reported through Zhibao since then.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the first day of each community with daily reports and no first day."""
    op.execute(
        "INSERT INTO unit_first_days (unit, day) SELECT community, MIN(day) FROM daily_reports "
        "WHERE community NOT IN (SELECT unit FROM unit_first_days) GROUP BY community"
    )


def downgrade() -> None:
    """Nothing to undo: the rows are what the service would have written."""
