"""Read side: a unit's figures, its children's, series and reporting completeness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.rollup import RiskRule, figures
from zhibao_aggregator.domain.tasks import DayBounds
from zhibao_aggregator.storage import queries, task_queries
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Registry, Unit

SERIES_METRICS = frozenset((*m.FLOWS, *m.STOCKS))
#: At most this many overdue tasks are listed per street (the count is always complete).
OVERDUE_LISTED = 100
Figures = dict[str, int | float | str | None]


class UnknownUnit(LookupError):
    """No unit with this code in the registry."""


def unit_json(unit: Unit) -> dict[str, Any]:
    """A unit as the API shows it."""
    return {
        "code": unit.code,
        "name": unit.name,
        "name_en": unit.name_en,
        "level": unit.level.value,
        "households": unit.households,
        "population": unit.population,
    }


@dataclass
class RollupReader:
    """Answers read queries from the maintained counters."""

    engine: AsyncEngine
    registry: Registry
    calendar: Calendar
    risk: RiskRule
    report_due_after: Any

    def unit(self, code: str) -> Unit:
        """The unit, or :class:`UnknownUnit`."""
        unit = self.registry.get(code)
        if unit is None:
            raise UnknownUnit(code)
        return unit

    def describe(self, code: str) -> dict[str, Any]:
        """The unit with its parent and children."""
        unit = self.unit(code)
        parent = self.registry.get(unit.parent) if unit.parent else None
        return {
            "unit": unit_json(unit),
            "parent": unit_json(parent) if parent else None,
            "children": [unit_json(child) for child in self.registry.children(code)],
        }

    async def figures(self, code: str, day: date) -> Figures:
        """All metrics of a unit on a day."""
        return (await self.figures_of([code], day))[code]

    async def figures_of(self, codes: list[str], day: date) -> dict[str, Figures]:
        """All metrics of several units on a day: one query of counters, one of tasks."""
        expected = {
            code: len(self.registry.communities_under(self.unit(code).code)) for code in codes
        }
        async with self.engine.connect() as conn:
            snaps = await queries.snapshots(conn, expected, day, self.risk.window_days)
            tasks = await task_queries.task_figures(conn, codes, self.day_bounds(day))
        not_yet_due = self._reports_not_yet_due(day)
        out: dict[str, Figures] = {}
        for code, snap in snaps.items():
            found: Figures = dict(figures(day, snap, self.risk, not_yet_due))
            found.update(tasks[code])
            out[code] = found
        return out

    def day_bounds(self, day: date) -> DayBounds:
        """When ``day`` starts and ends (district time), and its task figures' reference."""
        start = self.calendar.start_of(day)
        end = self.calendar.start_of(day + timedelta(days=1))
        return DayBounds.of(start, end, datetime.now(UTC))

    async def overdue_tasks(self, code: str, day: date) -> dict[str, Any]:
        """The unit's overdue tasks on ``day`` per street (ids, communities, kinds, due times)."""
        unit = self.unit(code)
        bounds = self.day_bounds(day)
        async with self.engine.connect() as conn:
            found = await task_queries.overdue_tasks(conn, code, bounds)
        grouped = task_queries.by_street(found, CODE_LENGTH[Level.STREET])
        streets = []
        for street, tasks in sorted(grouped.items()):
            known = self.registry.get(street)
            streets.append(
                {
                    "code": street,
                    "name": known.name if known else street,
                    "name_en": known.name_en if known else "",
                    "overdue": len(tasks),
                    "tasks": [self._overdue_json(task) for task in tasks[:OVERDUE_LISTED]],
                }
            )
        return {
            "unit": unit.code,
            "date": day.isoformat(),
            "as_of": bounds.reference.isoformat(),
            "overdue": len(found),
            "streets": streets,
        }

    def _overdue_json(self, task: task_queries.OverdueTask) -> dict[str, Any]:
        community = self.registry.get(task.community)
        return {
            "task": task.task,
            "community": task.community,
            "community_name": community.name if community else task.community,
            "kind": task.kind,
            "due": task.due.isoformat(),
        }

    def _reports_not_yet_due(self, day: date) -> datetime | None:
        """The deadline of ``day``'s reports while it is still ahead, else None."""
        due: datetime = self.calendar.start_of(day) + self.report_due_after
        return due if datetime.now(UTC) < due else None

    async def children(self, code: str, day: date) -> list[tuple[Unit, Figures]]:
        """Each child's figures (for a table)."""
        self.unit(code)
        units = self.registry.children(code)
        found = await self.figures_of([c.code for c in units], day) if units else {}
        return [(c, found[c.code]) for c in units]

    async def series(self, code: str, metric: str, first: date, last: date) -> dict[date, int]:
        """A daily series of a stored metric."""
        self.unit(code)
        async with self.engine.connect() as conn:
            return await queries.series(conn, code, metric, first, last)

    async def completeness(self, code: str, day: date) -> dict[str, Any]:
        """Which communities under the unit reported for ``day``, on time or late, and which not."""
        self.unit(code)
        async with self.engine.connect() as conn:
            reports = await queries.reports_for(conn, code, day)
        rows = []
        for community in self.registry.communities_under(code):
            first = reports.get(community.code)
            on_time = (
                self.calendar.report_on_time(day, first[0], self.report_due_after)
                if first
                else None
            )
            rows.append(
                {
                    "code": community.code,
                    "name": community.name,
                    "reported": first is not None,
                    "received_at": first[0].isoformat() if first else None,
                    "on_time": on_time,
                    "zero": first[1] if first else None,
                }
            )
        reported = [r for r in rows if r["reported"]]
        return {
            "unit": code,
            "date": day.isoformat(),
            "expected": len(rows),
            "reported": len(reported),
            "on_time": sum(1 for r in reported if r["on_time"]),
            "late": sum(1 for r in reported if not r["on_time"]),
            "missing": [r["code"] for r in rows if not r["reported"]],
            "communities": rows,
        }
