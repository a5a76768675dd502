"""Tables of epidemic points (疫点) and the tasks their measures issued."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from zhibao_response.tables import metadata
from zhibao_shared.db import UtcDateTime

points = Table(
    "points",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("compound", String(64)),
    Column("building", String(64)),
    Column("start", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    #: JSON list of the measures as declared
    Column("measures", Text, nullable=False),
    Column("declared_by", String, nullable=False),
    Column("declared_token", String, nullable=False),
    #: The declaring command centre's scope above the unit (null: declared before 0005).
    Column("declared_scope", String(12)),
    Column("declared_at", UtcDateTime, nullable=False),
    Column("lifted_at", UtcDateTime),
    Column("lifted_by", String),
    Column("lifted_token", String),
    Column("lift_reason", Text),
    Index("ix_points_unit", "unit"),
)

point_tasks = Table(
    "point_tasks",
    metadata,
    Column("point_id", String(32), ForeignKey("points.id"), primary_key=True),
    Column("task_id", String(32), ForeignKey("tasks.id"), primary_key=True),
    Column("measure", Integer, nullable=False),
)

POINT_TABLES = ("points", "point_tasks")
