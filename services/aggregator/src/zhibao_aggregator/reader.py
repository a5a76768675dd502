"""Read side: a unit's figures, its children's, series and reporting completeness."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import points as pt
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.care import KEY_PERSONS
from zhibao_aggregator.domain.point_places import resolve
from zhibao_aggregator.domain.risk import NationalRule2020, ZoningRule
from zhibao_aggregator.domain.rollup import CounterSnapshot, UnitContext, figures
from zhibao_aggregator.domain.tasks import DayBounds
from zhibao_aggregator.domain.workload import GridWorkload
from zhibao_aggregator.storage import care, levels, places, points, queries, task_queries
from zhibao_aggregator.storage.read_connections import ReadConnections
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Registry, Unit
from zhibao_shared.places import Places

SERIES_METRICS = frozenset((*m.FLOWS, *m.STOCKS, *m.RELEASES_DUE))
#: At most this many overdue tasks are listed per street (the count is always complete).
OVERDUE_LISTED = 100
#: A rollup's figures; ``key_persons`` is the one mapping ({category: persons}).
Figures = dict[str, int | float | str | dict[str, int] | None]


Scalars = dict[str, int | float | str | None]


def scalars(found: Figures) -> Scalars:
    """The figures without the mappings (``key_persons``): what reports, templates and
    public releases compute with."""
    return {name: value for name, value in found.items() if not isinstance(value, dict)}


def _common_prefix(codes: list[str]) -> str:
    """The longest prefix of every code (points under it are the only ones the codes use)."""
    first, last = min(codes, default=""), max(codes, default="")
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


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
    risk: ZoningRule
    report_due_after: Any
    point_lift_days: int = 14
    #: The places registered below communities (None: none), and grid workload per unit.
    places: Places | None = None
    workload: dict[str, GridWorkload] = field(default_factory=dict)
    connections: ReadConnections = field(init=False)

    def __post_init__(self) -> None:
        self.connections = ReadConnections(self.engine)

    def unit(self, code: str) -> Unit:
        """The unit, or :class:`UnknownUnit`."""
        unit = self.registry.get(code)
        if unit is None:
            raise UnknownUnit(code)
        return unit

    def grid_workload(self, code: str) -> dict[str, object] | None:
        """The unit's grid workers' workload (None: no grids registered under it)."""
        found = self.workload.get(code)
        return found.as_json() if found is not None else None

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
            code: self.registry.count_communities_under(self.unit(code).code) for code in codes
        }
        end_of_day = self.calendar.start_of(day + timedelta(days=1))
        async with self.connections.connect() as conn:
            snaps = await queries.snapshots(conn, expected, day, self.risk.window_days)
            snaps = await self._with_clusters(conn, snaps, day)
            declared = await levels.declared_levels(conn, codes, end_of_day)
            statuses = await self._point_statuses(conn, _common_prefix(codes), day)
            tasks = await task_queries.task_figures(conn, codes, self.day_bounds(day))
            registered = await care.key_person_counts(conn, codes)
        not_yet_due = self._reports_not_yet_due(day)
        out: dict[str, Figures] = {}
        for code, snap in snaps.items():
            placed = [s for s in statuses if s.point.unit.startswith(code)]
            context = UnitContext(declared.get(code), pt.point_figures(placed))
            found: Figures = dict(figures(day, snap, self.risk, not_yet_due, context))
            found.update(tasks[code])
            found[KEY_PERSONS] = registered[code]
            out[code] = found
        return out

    async def key_persons(self, community: str) -> dict[str, Any]:
        """A community's key-person register (the community's own tokens only)."""
        unit = self.unit(community)
        async with self.engine.connect() as conn:
            rows = await care.register(conn, unit.code)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.category] = counts.get(row.category, 0) + 1
        return {
            "unit": unit.code,
            "key_persons": [row.as_json() for row in rows],
            "counts": dict(sorted(counts.items())),
        }

    def day_bounds(self, day: date) -> DayBounds:
        """When ``day`` starts and ends (district time), and its task figures' reference."""
        start = self.calendar.start_of(day)
        end = self.calendar.start_of(day + timedelta(days=1))
        return DayBounds.of(start, end, datetime.now(UTC))

    async def overdue_tasks(self, code: str, day: date) -> dict[str, Any]:
        """The unit's overdue tasks on ``day`` per street (ids, communities, kinds, due times)."""
        unit = self.unit(code)
        bounds = self.day_bounds(day)
        async with self.connections.connect() as conn:
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

    async def _point_statuses(
        self, conn: AsyncConnection, prefix: str, day: date
    ) -> list[pt.PointStatus]:
        """The points under ``prefix`` at the end of ``day`` (two small reads when any)."""
        found = await points.all_points(conn, prefix)
        if not found:
            return []
        if self.places is not None:
            found = [resolve(p, self.places) for p in found]
        cases = await points.placed_cases(conn, sorted({p.unit for p in found}))
        return [pt.status(p, cases, day, self.calendar, self.point_lift_days) for p in found]

    async def points(self, code: str, day: date) -> list[dict[str, object]]:
        """Every epidemic point under the unit as it stands at the end of ``day``."""
        self.unit(code)
        async with self.connections.connect() as conn:
            return [pt.as_json(s) for s in await self._point_statuses(conn, code, day)]

    async def isolation_releases(self, code: str, first: date, last: date) -> dict[str, Any]:
        """Per day, the persons now in isolation planned to be released that day, by kind;
        and how many are overdue (planned end passed, no end event) today."""
        self.unit(code)
        today = self.calendar.today(datetime.now(UTC))
        async with self.connections.connect() as conn:
            by_kind = {
                kind: await queries.series(conn, code, m.release_due_metric(kind), first, last)
                for kind in m.ISOLATION_KINDS
            }
            overdue = await queries.series(conn, code, m.ISOLATIONS_OVERDUE, today, today)
        days: list[dict[str, Any]] = []
        for day in sorted(next(iter(by_kind.values()))):
            counts = {kind: series[day] for kind, series in by_kind.items()}
            days.append({"date": day.isoformat(), **counts, "total": sum(counts.values())})
        return {"unit": code, "isolations_overdue": overdue[today], "days": days}

    async def _with_clusters(
        self, conn: AsyncConnection, snaps: dict[str, CounterSnapshot], day: date
    ) -> dict[str, CounterSnapshot]:
        """Snapshots marked with their cluster (read only when the rule needs it and some
        unit has new cases in the window)."""
        rule = self.risk
        if not isinstance(rule, NationalRule2020) or not any(
            s.confirmed_in_window for s in snaps.values()
        ):
            return snaps
        first = day - timedelta(days=self.risk.window_days - 1)
        start, end = self.calendar.start_of(first), self.calendar.start_of(day + timedelta(days=1))
        found = await places.cluster_communities(conn, start, end, rule.cluster_min_cases)
        return {
            code: replace(snap, clusters_in_window=places.clusters_in(code, found))
            for code, snap in snaps.items()
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
        async with self.connections.connect() as conn:
            return await queries.series(conn, code, metric, first, last)

    async def completeness(self, code: str, day: date) -> dict[str, Any]:
        """Which communities under the unit reported for ``day``, on time or late, and which not."""
        self.unit(code)
        async with self.connections.connect() as conn:
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
