"""Epidemic points (疫点): which cases fall in a point, its planned lifting, its figures (pure).

A point is a compound and/or a building of one community. A case (a person reported
confirmed or asymptomatic) falls in the point when it was reported for that community
with the point's compound (and, if the point names one, its building), or, for a point
naming only a building, with that building. When the point is a registered place (named
by its id, or by labels the places registry matches: ``compound_id``/``building_id``),
a case intake matched to registered places falls in it by id, whatever its labels; a
case at no registered place is compared by labels as before.

* **planned lifting**: ``lift_days`` (14) days after the later of the point's start and
  the last case in it, so a new case there moves it;
* **active** on a day: started by then and not lifted by then;
* **overdue for lifting**: active after its planned lifting day;
* **cases after declaration**: persons whose case in the point was reported for a time
  at or after the point was declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from zhibao_aggregator.domain.calendar import Calendar


@dataclass(frozen=True)
class Point:
    """A declared epidemic point."""

    point: str
    unit: str
    compound: str | None
    building: str | None
    start: datetime
    declared_at: datetime
    declared_by: str
    lifted_at: datetime | None
    lifted_by: str | None
    #: The registered compound (and building, if the point names one) it lies at.
    compound_id: str | None = None
    building_id: str | None = None


@dataclass(frozen=True)
class PlacedCase:
    """A person reported confirmed or asymptomatic at a place of a community."""

    community: str
    compound: str | None
    building: str | None
    pid: str
    time: datetime
    #: The registered places intake matched the report to (None: none).
    compound_id: str | None = None
    building_id: str | None = None


@dataclass(frozen=True)
class PointStatus:
    """A point as it stands at the end of a day."""

    point: Point
    last_case_day: date | None
    planned_lifting: date
    active: bool
    overdue_for_lifting: bool
    cases_after_declaration: int


def falls_in(case: PlacedCase, point: Point) -> bool:
    """True when the case was reported at the point's place."""
    if case.community != point.unit:
        return False
    if point.compound_id is not None and case.compound_id is not None:
        if point.building_id is not None:
            return case.building_id == point.building_id
        return case.compound_id == point.compound_id
    if point.compound is not None:
        same = case.compound == point.compound
        return same and (point.building is None or case.building == point.building)
    return case.building == point.building


def status(
    point: Point, cases: Iterable[PlacedCase], day: date, calendar: Calendar, lift_days: int
) -> PointStatus:
    """The point at the end of ``day``, from the cases known (those after ``day`` ignored)."""
    inside = [c for c in cases if falls_in(c, point) and calendar.day(c.time) <= day]
    start = calendar.day(point.start)
    last = max((calendar.day(c.time) for c in inside), default=None)
    planned = max(start, last or start) + timedelta(days=lift_days)
    lifted = point.lifted_at is not None and calendar.day(point.lifted_at) <= day
    active = start <= day and not lifted
    after = len({c.pid for c in inside if c.time >= point.declared_at})
    return PointStatus(point, last, planned, active, active and planned < day, after)


def point_figures(statuses: Sequence[PointStatus]) -> dict[str, int]:
    """A unit's point figures: active points, those overdue for lifting, and the cases in
    active points after their declaration."""
    active = [s for s in statuses if s.active]
    return {
        "points_active": len(active),
        "points_overdue_for_lifting": sum(1 for s in active if s.overdue_for_lifting),
        "point_cases_after_declaration": sum(s.cases_after_declaration for s in active),
    }


def as_json(s: PointStatus) -> dict[str, object]:
    """A point's status as the API shows it."""
    p = s.point
    return {
        "point": p.point,
        "unit": p.unit,
        "compound": p.compound,
        "building": p.building,
        "compound_id": p.compound_id,
        "building_id": p.building_id,
        "start": p.start.isoformat(),
        "declared_at": p.declared_at.isoformat(),
        "declared_by": p.declared_by,
        "lifted_at": p.lifted_at.isoformat() if p.lifted_at else None,
        "lifted_by": p.lifted_by,
        "active": s.active,
        "last_case_day": s.last_case_day.isoformat() if s.last_case_day else None,
        "planned_lifting": s.planned_lifting.isoformat(),
        "overdue_for_lifting": s.overdue_for_lifting,
        "cases_after_declaration": s.cases_after_declaration,
    }
