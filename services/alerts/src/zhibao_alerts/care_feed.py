"""The alerts service's consumer of what key persons' watch reads on the tasks stream.

A durable pull consumer of its own, ``<durable>-care`` (the task consumer and its
per-message cost are untouched), filtered to the response service's ``changed`` task
messages (a task about a person done — a need delivered, a visit — is a contact with
them) and its epidemic points (``point``: persons living in one are watched). Batches
are applied in one transaction and acknowledged after the commit
(:class:`~zhibao_shared.stream_feed.StreamFeed`); applying is idempotent (contacts keep
the latest time, points are stored by id as full snapshots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_alerts import care_store
from zhibao_alerts.keypersons import CareNotes, KeyPersons
from zhibao_shared.places import PlaceMatch, Places, UnknownPlace, kind_of
from zhibao_shared.response_events import (
    LEVEL_EVENT,
    POINT_EVENT,
    LevelMessage,
    PointMessage,
    parse_response_message,
)
from zhibao_shared.subjects import task_event_filters
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState

Message = TaskMessage | PointMessage | LevelMessage


def care_filters(districts: Sequence[str]) -> tuple[str, ...]:
    """Subject filters: the changed task messages, the points and the declared levels of
    these districts."""
    return tuple(task_event_filters(districts, (TaskEvent.CHANGED, POINT_EVENT, LEVEL_EVENT)))


def decode(msg: Msg) -> Message:
    """A changed task message, a point or a level (``ValueError`` when it is none)."""
    if msg.subject.endswith((f".{POINT_EVENT}", f".{LEVEL_EVENT}")):
        return parse_response_message(msg.subject, msg.data)
    return TaskMessage.model_validate_json(msg.data)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def point_places(point: PointMessage, places: Places) -> PlaceMatch:
    """The registered places a point names: a registered building's or compound's id (the
    response service takes either), completed by the labels; else the labels matched."""
    named = [v for v in (point.building, point.compound) if v and kind_of(v) is not None]
    compound, building = (
        None if v and kind_of(v) is not None else v for v in (point.compound, point.building)
    )
    try:
        return places.locate(point.unit, named[0] if named else None, compound, building)
    except UnknownPlace:  # not (or no longer) registered: the labels as declared
        return PlaceMatch()


def point_row(point: PointMessage, places: Places | None) -> dict[str, Any]:
    """A point as stored: its labels (or ids), and the registered places they name."""
    matched = point_places(point, places) if places is not None else None
    return {
        "point": point.point,
        "community": point.unit,
        "compound": point.compound,
        "building": point.building,
        "compound_id": matched.compound if matched else None,
        "building_id": matched.building if matched and point.building else None,
        "start": point.start,
        "lifted_at": point.lifted_at,
    }


def level_row(level: LevelMessage) -> dict[str, Any]:
    """A declaration as stored (the unit's level in force is its highest number)."""
    return {
        "unit": level.unit,
        "number": level.number,
        "level": level.level,
        "declared_at": level.declared_at,
    }


class ApplyCareMessages:
    """The care consumer's batch handler."""

    def __init__(
        self, engine: AsyncEngine, persons: KeyPersons, places: Callable[[], Places | None]
    ) -> None:
        self._engine = engine
        self._persons = persons
        self._places = places

    async def __call__(self, messages: Sequence[Message]) -> None:
        """Store points and contacts; recompute the persons concerned."""
        notes = CareNotes()
        points: list[dict[str, Any]] = []
        levels: list[dict[str, Any]] = []
        places = self._places()
        for message in messages:
            if isinstance(message, PointMessage):
                points.append(point_row(message, places))
            elif isinstance(message, LevelMessage):
                levels.append(level_row(message))
            elif message.state is TaskState.DONE and message.person is not None:
                notes.contact(message.person.pid, _aware(message.at))
        if not points and not levels and not notes.contacts:
            return
        async with self._engine.begin() as conn:
            await care_store.store_points(conn, points)
            await care_store.store_levels(conn, levels)
            await self._persons.apply(conn, notes)
            affected = await care_store.persons_in(conn, {p["community"] for p in points})
            affected += await care_store.persons_under(conn, {v["unit"] for v in levels})
            if affected:
                await self._persons.refresh(conn, affected)
