"""Reads and writes of key persons and epidemic points, on the caller's transaction.

Every function costs a fixed number of statements whatever the number of persons it is
given: rows are read in one query, folded in memory and written back set-wise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts.domain.care import Person, Point, Where
from zhibao_alerts.tables import declared_levels, epidemic_points, isolations, key_persons
from zhibao_shared.db import UtcDateTime
from zhibao_shared.hierarchy import lineage

_PLACE = ("compound_id", "building_id", "grid_id", "compound", "building")


@dataclass(frozen=True)
class PersonNote:
    """What one event says about a person: a registration or removal (``action``), or
    only where they live (a need)."""

    pid: str
    community: str
    at: datetime
    where: Where
    category: str | None = None
    #: register, remove, or None (a need: the place only)
    action: str | None = None


def _person(row: dict[str, Any]) -> Person:
    where = Where(*(row[name] for name in _PLACE))
    return Person(
        row["pid"],
        row["community"],
        row["category"],
        bool(row["registered"]),
        where,
        row["last_contact_at"],
    )


async def _rows(conn: AsyncConnection, pids: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    found = await conn.execute(select(key_persons).where(key_persons.c.pid.in_(wanted)))
    return {row.pid: row._asdict() for row in found}


def _fold(row: dict[str, Any] | None, note: PersonNote) -> dict[str, Any]:
    """A person's row once ``note`` is applied: the latest registration (event time)
    decides the register, the latest report that says where decides the place (a need
    reported without a place keeps the registered one)."""
    row = dict(row) if row is not None else _new_row(note)
    if note.action is not None and (
        row["registered_at"] is None or note.at >= row["registered_at"]
    ):
        row["registered"] = int(note.action == "register")
        row["registered_at"] = note.at
        row["category"] = note.category or row["category"]
        row["community"] = note.community
    says_where = any(getattr(note.where, name) for name in _PLACE)
    if says_where and (row["place_at"] is None or note.at >= row["place_at"]):
        row.update({name: getattr(note.where, name) for name in _PLACE})
        row["place_at"] = note.at
    return row


def _new_row(note: PersonNote) -> dict[str, Any]:
    return {
        "pid": note.pid,
        "community": note.community,
        "category": None,
        "registered": 0,
        "registered_at": None,
        **dict.fromkeys(_PLACE),
        "place_at": None,
        "last_contact_at": None,
        "due_at": None,
        "alert_id": None,
    }


async def note_persons(conn: AsyncConnection, notes: Sequence[PersonNote]) -> None:
    """Apply registrations, removals and places (in event time, whatever their order)."""
    if not notes:
        return
    stored = await _rows(conn, (n.pid for n in notes))
    after: dict[str, dict[str, Any]] = {}
    for note in sorted(notes, key=lambda n: n.at):
        after[note.pid] = _fold(after.get(note.pid) or stored.get(note.pid), note)
    new = [row for pid, row in after.items() if pid not in stored]
    changed = [row for pid, row in after.items() if pid in stored]
    if new:
        await conn.execute(insert(key_persons), new)
    if changed:
        columns = ("community", "category", "registered", *_PLACE)
        await conn.execute(
            update(key_persons)
            .where(key_persons.c.pid == bindparam("b_pid"))
            .values(
                **{name: bindparam(f"b_{name}") for name in columns},
                registered_at=bindparam("b_registered_at", type_=UtcDateTime()),
                place_at=bindparam("b_place_at", type_=UtcDateTime()),
            ),
            [
                {f"b_{k}": v for k, v in row.items() if k not in ("due_at", "alert_id")}
                for row in changed
            ],
        )


async def note_contacts(conn: AsyncConnection, contacts: dict[str, datetime]) -> set[str]:
    """Record contacts with known persons (event time); returns those whose last contact
    moved later (a contact older than the last known one changes nothing)."""
    if not contacts:
        return set()
    rows = await conn.execute(
        select(key_persons.c.pid, key_persons.c.last_contact_at).where(
            key_persons.c.pid.in_(sorted(contacts))
        )
    )
    later = {pid: contacts[pid] for pid, last in rows if last is None or contacts[pid] > last}
    if later:
        await conn.execute(
            update(key_persons)
            .where(key_persons.c.pid == bindparam("b_pid"))
            .values(last_contact_at=bindparam("b_at", type_=UtcDateTime())),
            [{"b_pid": pid, "b_at": at} for pid, at in later.items()],
        )
    return set(later)


@dataclass(frozen=True)
class Watched:
    """A person as stored, with what their watch depends on."""

    person: Person
    alert_id: int | None
    due_at: datetime | None
    isolated_since: datetime | None
    points: tuple[Point, ...]
    #: since when a level the rules call sealed is in force above them (None: it is not)
    sealed_since: datetime | None = None


async def load(
    conn: AsyncConnection, pids: Iterable[str], sealed_levels: Collection[str] = ()
) -> list[Watched]:
    """The persons ``pids`` (those known), with their isolation, their community's
    epidemic points in force and whether a level in ``sealed_levels`` is in force on
    their community or above (four queries)."""
    rows = await _rows(conn, pids)
    if not rows:
        return []
    isolated = {
        pid: since
        for pid, since in await conn.execute(
            select(isolations.c.pid, isolations.c.status_at).where(
                isolations.c.pid.in_(sorted(rows)), isolations.c.active == 1
            )
        )
    }
    communities = {row["community"] for row in rows.values()}
    points = await points_in(conn, communities)
    sealed = await sealed_since(conn, communities, sealed_levels)
    return [
        Watched(
            _person(row),
            row["alert_id"],
            row["due_at"],
            isolated.get(pid),
            points.get(row["community"], ()),
            sealed.get(row["community"]),
        )
        for pid, row in rows.items()
    ]


async def points_in(
    conn: AsyncConnection, communities: Iterable[str]
) -> dict[str, tuple[Point, ...]]:
    """The epidemic points in force in each of ``communities``."""
    wanted = sorted(set(communities))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(epidemic_points).where(
            epidemic_points.c.community.in_(wanted), epidemic_points.c.lifted_at.is_(None)
        )
    )
    found: dict[str, list[Point]] = {}
    for row in rows:
        where = Where(row.compound_id, row.building_id, None, row.compound, row.building)
        found.setdefault(row.community, []).append(Point(where, row.start))
    return {community: tuple(points) for community, points in found.items()}


async def persons_in(conn: AsyncConnection, communities: Iterable[str]) -> list[str]:
    """The pseudonyms of the registered persons of ``communities``."""
    wanted = sorted(set(communities))
    if not wanted:
        return []
    rows = await conn.execute(
        select(key_persons.c.pid).where(
            key_persons.c.community.in_(wanted), key_persons.c.registered == 1
        )
    )
    return list(rows.scalars())


async def schedule(
    conn: AsyncConnection, due: dict[str, tuple[datetime | None, int | None]]
) -> None:
    """Set each person's due time and open alert (pid: (due_at, alert_id))."""
    if due:
        await conn.execute(
            update(key_persons)
            .where(key_persons.c.pid == bindparam("b_pid"))
            .values(due_at=bindparam("b_due", type_=UtcDateTime()), alert_id=bindparam("b_alert")),
            [{"b_pid": pid, "b_due": at, "b_alert": alert} for pid, (at, alert) in due.items()],
        )


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """The persons whose silence has lasted too long by ``now``, the longest first (an
    indexed range: nothing is read while nobody is due)."""
    rows = await conn.execute(
        select(key_persons.c.pid)
        .where(and_(key_persons.c.due_at.is_not(None), key_persons.c.due_at <= now))
        .order_by(key_persons.c.due_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def store_points(conn: AsyncConnection, points: Sequence[dict[str, Any]]) -> None:
    """Insert or replace epidemic points (each message is the point's full snapshot)."""
    if not points:
        return
    ids = [p["point"] for p in points]
    known = set(
        (
            await conn.execute(
                select(epidemic_points.c.point).where(epidemic_points.c.point.in_(ids))
            )
        ).scalars()
    )
    new = [p for p in points if p["point"] not in known]
    if new:
        await conn.execute(insert(epidemic_points), new)
    lifted = [p for p in points if p["point"] in known and p["lifted_at"] is not None]
    if lifted:
        await conn.execute(
            update(epidemic_points)
            .where(epidemic_points.c.point == bindparam("b_point"))
            .values(lifted_at=bindparam("b_lifted", type_=UtcDateTime())),
            [{"b_point": p["point"], "b_lifted": p["lifted_at"]} for p in lifted],
        )


async def grids_of(conn: AsyncConnection, pids: Iterable[str]) -> dict[str, str]:
    """The registered grid each of these persons lives in (those known to have one)."""
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(key_persons.c.pid, key_persons.c.grid_id).where(
            key_persons.c.pid.in_(wanted), key_persons.c.grid_id.is_not(None)
        )
    )
    return {pid: grid for pid, grid in rows}


async def sealed_since(
    conn: AsyncConnection, communities: Iterable[str], sealed_levels: Collection[str]
) -> dict[str, datetime]:
    """Since when each community is under a level in ``sealed_levels`` (declared on it or
    on a unit above it); those that are not are left out."""
    wanted = set(communities)
    if not wanted or not sealed_levels:
        return {}
    units = {unit for community in wanted for unit in lineage(community)}
    rows = await conn.execute(
        select(declared_levels.c.unit, declared_levels.c.declared_at).where(
            declared_levels.c.unit.in_(sorted(units)),
            declared_levels.c.level.in_(sorted(sealed_levels)),
        )
    )
    in_force = dict(rows.all())
    found: dict[str, datetime] = {}
    for community in wanted:
        times = [in_force[unit] for unit in lineage(community) if unit in in_force]
        if times:
            found[community] = min(times)
    return found


async def store_levels(conn: AsyncConnection, levels: Sequence[dict[str, Any]]) -> None:
    """Keep each unit's level in force: the declaration with the highest number (a
    redelivered or older one changes nothing)."""
    if not levels:
        return
    newest: dict[str, dict[str, Any]] = {}
    for level in levels:
        if level["number"] > newest.get(level["unit"], {"number": 0})["number"]:
            newest[level["unit"]] = level
    rows = await conn.execute(
        select(declared_levels.c.unit, declared_levels.c.number).where(
            declared_levels.c.unit.in_(sorted(newest))
        )
    )
    known = dict(rows.all())
    new = [row for unit, row in newest.items() if unit not in known]
    later = [row for unit, row in newest.items() if unit in known and row["number"] > known[unit]]
    if new:
        await conn.execute(insert(declared_levels), new)
    if later:
        await conn.execute(
            update(declared_levels)
            .where(declared_levels.c.unit == bindparam("b_unit"))
            .values(
                number=bindparam("b_number"),
                level=bindparam("b_level"),
                declared_at=bindparam("b_declared_at", type_=UtcDateTime()),
            ),
            [{f"b_{k}": v for k, v in row.items()} for row in later],
        )


async def persons_under(conn: AsyncConnection, units: Iterable[str]) -> list[str]:
    """The pseudonyms of the registered persons of the communities under ``units``."""
    wanted = sorted(set(units))
    if not wanted:
        return []
    rows = await conn.execute(
        select(key_persons.c.pid).where(
            or_(*(key_persons.c.community.startswith(unit) for unit in wanted)),
            key_persons.c.registered == 1,
        )
    )
    return list(rows.scalars())
