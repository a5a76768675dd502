"""The tables of task rollups (changed only through Alembic migrations).

Kept apart from the event tables: task messages have their own consumer and
writer. No personal data: a task is its id, unit, kind and times.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from zhibao_aggregator.storage.tables import metadata
from zhibao_shared.db import UtcDateTime

#: Every task message applied (its key dedups redeliveries): a task's known facts.
task_facts = Table(
    "task_facts",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("at", UtcDateTime, primary_key=True),
    Column("event", String(16), primary_key=True),
    Column("state", String(16), primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("from_unit", String(12), nullable=True),
    Column("kind", String(40), nullable=False),
    Column("due", UtcDateTime, nullable=False),
)

#: Each task's stretches of being open in one community, recomputed from its facts.
task_spans = Table(
    "task_spans",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("due", UtcDateTime, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("issued_at", UtcDateTime, nullable=True),
)

Index("ix_task_spans_unit", task_spans.c.unit, task_spans.c.opened_at)
Index("ix_task_spans_closed_at", task_spans.c.closed_at)
