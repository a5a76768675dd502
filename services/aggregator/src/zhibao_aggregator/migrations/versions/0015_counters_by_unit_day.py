"""Counters ordered by (unit, day, metric): a day's rows of a unit lie together.

The primary key was (unit, metric, day): today's rows of one unit, one per metric, lay
in as many places of the key's B-tree as the unit has metrics, so a batch that touched
every community wrote and read thousands of scattered pages (on SQLite, also a second
copy through the ``(unit, day)`` index and the rowid table). Keyed by (unit, day,
metric), a unit's day is one range: the day's upserts touch a page or two a unit, and
the ``(unit, day)`` read of a day's figures is the key itself. On SQLite the table is
``WITHOUT ROWID`` (the key is the table). The per-metric reads (a metric over a range of
days) use the new ``(unit, metric, day)`` index, which changes only when a row is new.

Revision ID: 0015_counters_by_unit_day
Revises: 0014_audit_event_source_length
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_counters_by_unit_day"
down_revision = "0014_audit_event_source_length"
branch_labels = None
depends_on = None

_COLUMNS = ("unit", "metric", "day", "value")


def upgrade() -> None:
    """Re-key the counters by (unit, day, metric); index (unit, metric, day)."""
    _rekey(
        ("unit", "day", "metric"),
        dropped="ix_counters_unit_day",
        index=("ix_counters_unit_metric_day", ["unit", "metric", "day"]),
        with_rowid=False,
    )


def downgrade() -> None:
    """Key them by (unit, metric, day) again, with the (unit, day) index."""
    _rekey(
        ("unit", "metric", "day"),
        dropped="ix_counters_unit_metric_day",
        index=("ix_counters_unit_day", ["unit", "day"]),
        with_rowid=True,
    )


def _rekey(
    key: tuple[str, ...], *, dropped: str, index: tuple[str, list[str]], with_rowid: bool
) -> None:
    """Give the counters ``key`` as primary key and ``index`` in place of ``dropped``.

    ``dropped`` may be missing: an interrupted rebuild leaves the read indexes dropped,
    and its remedy (``rebuild --force``) migrates first.
    """
    op.drop_index(dropped, table_name="counters", if_exists=True)
    if op.get_bind().dialect.name == "sqlite":
        _copy_into_new_table(key, with_rowid=with_rowid)
    else:
        op.drop_constraint("counters_pkey", "counters", type_="primary")
        op.create_primary_key("counters_pkey", "counters", list(key))
    op.create_index(index[0], "counters", index[1])


def _copy_into_new_table(key: tuple[str, ...], *, with_rowid: bool) -> None:
    """SQLite cannot change a table's primary key: copy the rows, in key order, into a
    new table and put it in the old one's place. SQLite runs the DDL outside the copy's
    transaction: a copy that was stopped left its table, which a second run replaces."""
    op.drop_table("counters_rekeyed", if_exists=True)
    op.create_table(
        "counters_rekeyed",
        sa.Column("unit", sa.String(12), nullable=False),
        sa.Column("metric", sa.String(48), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=with_rowid,
    )
    old = sa.table("counters", *(sa.column(name) for name in _COLUMNS))
    new = sa.table("counters_rekeyed", *(sa.column(name) for name in _COLUMNS))
    in_key_order = sa.select(*old.c).order_by(*(old.c[name] for name in key))
    op.execute(new.insert().from_select(list(_COLUMNS), in_key_order))
    op.drop_table("counters")
    op.rename_table("counters_rekeyed", "counters")
