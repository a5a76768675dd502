"""Key persons without contact (pure).

A key person (重点人群: elderly living alone, disabled, ...) is *watched* while on the
community's register and in isolation, or living in an epidemic point (疫点: a sealed
compound or building). A watched person must hear from someone — a screening or
isolation check naming them, a task about them done (a need delivered, a visit) — every
``hours``: when they have not by then, one alert is raised for them, resolved by their
next contact.

Everything is in event time: the last contact is the latest event time of the contacts
(whatever order they arrive in), and the hours count from the later of the last contact
and the moment the person came under watch (a point declared today does not page for
persons last seen a week ago before it).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from zhibao_alerts.domain.config import Severity
from zhibao_alerts.domain.triggers import PID_SHOWN, Trigger

RULE = "keyperson_no_contact"

_CATEGORY_ZH = {
    "elderly_alone": "独居老人",
    "disabled": "残疾人",
    "chronic_medicine": "慢性病患者",
    "pregnant": "孕产妇",
    "dialysis": "透析患者",
    "child_unattended": "无人照护儿童",
}
_WHY_ZH = {"isolation": "隔离中", "point": "疫点封控中", "sealed": "所在单元封控中"}
_WHY_EN = {
    "isolation": "in isolation",
    "point": "in an epidemic point",
    "sealed": "in a unit under a sealing response level",
}


def same_label(a: str | None, b: str | None) -> bool:
    """Two reported labels name the same place (full-width and spacing aside)."""
    if a is None or b is None:
        return False
    return _plain(a) == _plain(b)


def _plain(label: str) -> str:
    return "".join(unicodedata.normalize("NFKC", label).split()).lower()


@dataclass(frozen=True)
class Where:
    """A place as events name it: registered ids where known, the labels as reported."""

    compound_id: str | None = None
    building_id: str | None = None
    grid_id: str | None = None
    compound: str | None = None
    building: str | None = None


@dataclass(frozen=True)
class Point:
    """An epidemic point in force: a compound, or a building (of a compound)."""

    where: Where
    start: datetime

    def covers(self, home: Where) -> bool:
        """True when ``home`` lies in the point: in its building (or, for a point that is
        a whole compound, in its compound); registered ids decide where both have them,
        else the labels."""
        point = self.where
        if point.building_id or point.building:
            if point.building_id and home.building_id:
                return point.building_id == home.building_id
            return same_label(point.building, home.building) and (
                point.compound is None or same_label(point.compound, home.compound)
            )
        if point.compound_id and home.compound_id:
            return point.compound_id == home.compound_id
        return same_label(point.compound, home.compound)


@dataclass(frozen=True)
class Person:
    """What the service knows of a key person."""

    pid: str
    community: str
    category: str | None
    registered: bool
    home: Where
    last_contact_at: datetime | None


def watched_since(
    person: Person,
    isolated_since: datetime | None,
    points: Sequence[Point],
    sealed_since: datetime | None = None,
) -> tuple[datetime, tuple[str, ...]] | None:
    """Since when ``person`` is watched and why (``isolation``, ``point``, ``sealed``: a
    level the rules call sealed is in force on their community or a unit above it); None
    when they are not (off the register, or neither isolated, in a point nor sealed)."""
    if not person.registered:
        return None
    starts: dict[str, datetime] = {}
    if isolated_since is not None:
        starts["isolation"] = isolated_since
    if sealed_since is not None:
        starts["sealed"] = sealed_since
    covering = [p.start for p in points if p.covers(person.home)]
    if covering:
        starts["point"] = min(covering)
    if not starts:
        return None
    return min(starts.values()), tuple(sorted(starts))


def silent_since(person: Person, since: datetime) -> datetime:
    """The start of the person's present silence: their last contact, or when they came
    under watch if that is later."""
    last = person.last_contact_at
    return since if last is None or last < since else last


def due_at(person: Person, since: datetime, hours: float) -> datetime:
    """When the person will have gone ``hours`` without contact while watched."""
    return silent_since(person, since) + timedelta(hours=hours)


def window(pid: str, silent_from: datetime) -> str:
    """One alert per person and silence: the pseudonym's first characters and its start."""
    return f"{pid[:PID_SHOWN]}:{silent_from.isoformat()}"


@dataclass(frozen=True)
class NoContact:
    """A watched person's silence that has lasted ``hours``."""

    person: Person
    silent_from: datetime
    reasons: tuple[str, ...]
    #: the place as the alert names it (registered names, else the labels)
    place: str
    hours: float
    severity: Severity
    day: date

    def trigger(self) -> Trigger:
        """The alert: the community's, routed to the person's grid worker first."""
        person = self.person
        category = person.category or "key_person"
        why_zh = "、".join(_WHY_ZH[r] for r in self.reasons)
        why_en = " and ".join(_WHY_EN[r] for r in self.reasons)
        where = f"{self.place} " if self.place else ""
        at = f" at {self.place}" if self.place else ""
        return Trigger(
            rule=RULE,
            unit=person.community,
            window=window(person.pid, self.silent_from),
            severity=self.severity,
            summary_zh=f"社区 {person.community} {where}的重点人员（"
            f"{_CATEGORY_ZH.get(category, category)}，{why_zh}）已超过 {self.hours:g} 小时"
            "无人联系、检查或送达",
            summary_en=f"A key person ({category}, {why_en}){at} in community "
            f"{person.community} has had no contact, check or delivery for {self.hours:g} h",
            day=self.day,
            grid=person.home.grid_id,
        )
