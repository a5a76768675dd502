"""The counters read one metric at a time, through ``ix_counters_unit_metric_day``.

The counters are keyed by (unit, day, metric) (a day of a unit lies together). A read
of one metric over a range of days (the last day with a case, a metric's series) is a
short range of the ``(unit, metric, day)`` index, but SQLite's planner, without
statistics, prefers a range of the key (every metric of every day in the range) because
the key holds the values. ``counters_by_metric`` is the same table with
``INDEXED BY`` on SQLite; other databases choose by their statistics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TableClause, column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from zhibao_aggregator.storage.tables import COUNTERS_BY_METRIC, counters


class _CountersByMetric(TableClause):
    """The ``counters`` table, named as itself, read through its per-metric index on SQLite."""

    inherit_cache = True


counters_by_metric = _CountersByMetric(
    counters.name, *(column(c.name, c.type) for c in counters.columns)
)


@compiles(_CountersByMetric, "sqlite")
def _indexed_by(element: _CountersByMetric, compiler: SQLCompiler, **kw: Any) -> str:
    rendered: str = compiler.visit_table(element, **kw)  # type: ignore[no-untyped-call]
    return f"{rendered} INDEXED BY {COUNTERS_BY_METRIC.name}" if kw.get("asfrom") else rendered
