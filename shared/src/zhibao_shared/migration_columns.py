"""Alembic helpers for a nullable column added to a table that an earlier revision created
from the current table definitions: a new database has it already, an existing one gets
it here (every service's migrations use them)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def add_if_missing(table: str, column: sa.Column[object]) -> None:
    """Add ``column`` to ``table`` unless the table has it (created with it)."""
    present = sa.inspect(op.get_bind()).get_columns(table)
    if not any(found["name"] == column.name for found in present):
        with op.batch_alter_table(table) as batch:
            batch.add_column(column)


def drop(table: str, name: str) -> None:
    """Drop the column ``name`` of ``table``."""
    with op.batch_alter_table(table) as batch:
        batch.drop_column(name)
