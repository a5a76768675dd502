"""No value the contract admits can fail a database write in the alerts service, continued
(issue 13; screenings: ``test_contract_lengths``).

On SQLite and PostgreSQL, with Chinese ids, sources and labels at their longest (three
bytes a character in UTF-8): a correction held before its event and applied when it
comes (its 500-character reason, its 64-character reporter, the corrected event's longest
id and source), a retraction resolving a cluster with the whole reason in the timeline,
key-person and need events with 64-character compound, building and grid labels, epidemic
points and levels as the response service announces them, and an overdue task of the
longest kind. Each value is read back whole.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, correction, published
from tests.alerts.test_contract_lengths import BUILDING, COMPOUND, longest_fever
from tests.alerts.test_corrections import db, db_url, history
from tests.alerts.test_keyperson_contact import Care
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.support.webhook import Receiver
from zhibao_alerts.tables import (
    declared_levels,
    epidemic_points,
    event_records,
    held_corrections,
    key_persons,
    task_alerts,
)
from zhibao_alerts.task_handler import ApplyTaskMessages
from zhibao_shared.events import (
    MAX_CORRECTION_REASON,
    MAX_ID_LENGTH,
    MAX_SOURCE_LENGTH,
    PublishedEvent,
)
from zhibao_shared.response_events import LevelMessage, PointMessage
from zhibao_shared.task_events import TaskEvent, TaskState, task_message

pytestmark = pytest.mark.integration

__all__ = ["db", "db_url"]  # the fixtures, on SQLite and PostgreSQL

REASON = "误" * MAX_CORRECTION_REASON
REPORTER = "报" * 64
GRID_LABEL = "格" * 64
#: The longest task kind the contract admits (``TASK_KIND_PATTERN``: 40 characters).
KIND = "k" + "_" * 38 + "z"
#: Registered places of the shipped registry (tests.alerts.test_grid_routing's).
PLACES = {
    "compound_id": f"{COMMUNITY}-C001",
    "building_id": f"{COMMUNITY}-C001-B003",
    "grid_id": f"{COMMUNITY}-G001",
}


def longest(event: PublishedEvent, n: int) -> PublishedEvent:
    """``event`` with a Chinese id and source of the longest lengths and the longest
    reporter (as intake may publish them)."""
    return event.model_copy(
        update={
            "id": str(n).rjust(MAX_ID_LENGTH, "编"),
            "source": f"/{event.subject}/".ljust(MAX_SOURCE_LENGTH, "源"),
            "reporter": REPORTER,
        }
    )


async def _rows(engine: AsyncEngine, statement: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(statement)).all())


async def test_a_held_correction_with_the_longest_values_is_kept_then_decides_its_event(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    pid = "c" * 32
    case = longest(
        published(
            "case",
            {
                "person": {"pid": pid},
                "classification": "suspected",
                "compound": "枫" * 64,
                "building": "楼" * 64,
            },
        ),
        1,
    )
    replacement = {
        "person": {"pid": pid},
        "classification": "confirmed",
        "compound": COMPOUND,
        "building": BUILDING,
        **{k: v for k, v in PLACES.items() if k != "grid_id"},
    }
    fix = longest(correction(case, replacement, reason=REASON), 2)
    await world.send(fix)  # before its event: held
    [held] = await _rows(db, select(held_corrections))
    assert (held.dedup_key, held.corrects) == (fix.dedup_key, case.dedup_key)
    assert (held.reason, held.reporter, held.action) == (REASON, REPORTER, "replace")
    assert json.loads(held.data)["compound"] == COMPOUND

    await world.send(case)
    assert await _rows(db, select(held_corrections)) == []
    [record] = await _rows(
        db, select(event_records).where(event_records.c.dedup_key == case.dedup_key)
    )
    assert record.decided_by == fix.dedup_key
    stored = json.loads(record.data)
    assert (stored["compound"], stored["building"]) == (COMPOUND, BUILDING)
    assert stored["classification"] == "confirmed"


async def test_a_cluster_of_the_longest_fevers_retracted_with_the_longest_reason(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    fevers = [longest_fever(n) for n in range(3)]
    await world.send(*fevers)
    [cluster] = await world.alerts()
    assert cluster.rule == "fever_cluster" and cluster.state == "firing"
    await world.send(longest(correction(fevers[0], reason=REASON), 9))
    [cluster] = await world.alerts()
    assert cluster.state == "resolved"
    details = [detail or "" for _action, _actor, detail in await history(db, cluster.id)]
    assert any(REASON in detail for detail in details), "the whole reason in the timeline"


async def test_key_persons_needs_points_and_levels_with_the_longest_labels(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    care = Care(db, clock, webhook)
    at = clock.now - timedelta(hours=2)
    labels = {"compound": COMPOUND, "building": BUILDING, "grid": GRID_LABEL}
    registered = longest(
        published(
            "keyperson",
            {"person": {"pid": "1" * 32}, "category": "elderly_alone", **labels, **PLACES},
            when=at,
        ),
        1,
    )
    needy = longest(
        published(
            "need",
            {"person": {"pid": "2" * 32}, "category": "medicine", "urgency": "urgent", **labels},
            when=at,
        ),
        2,
    )
    await care.world.send(registered, needy)
    rows = {r.pid: r for r in await _rows(db, select(key_persons))}
    assert set(rows) == {"1" * 32, "2" * 32}
    assert all((r.compound, r.building) == (COMPOUND, BUILDING) for r in rows.values())
    person = rows["1" * 32]
    assert (person.category, person.compound_id, person.building_id, person.grid_id) == (
        "elderly_alone",
        *PLACES.values(),
    )

    await care.messages(
        [
            PointMessage(
                event="point_declared",
                point="ab" * 16,
                unit=COMMUNITY,
                compound=COMPOUND,
                building=BUILDING,
                start=at,
                declared_at=at,
                declared_by="署" * 200,
            ),
            LevelMessage(
                declaration="cd" * 16,
                unit=COMMUNITY,
                level="red",
                number=1,
                declared_at=at,
                declared_by="署" * 200,
            ),
        ]
    )
    [point] = await _rows(db, select(epidemic_points))
    assert (point.point, point.compound, point.building) == ("ab" * 16, COMPOUND, BUILDING)
    [level] = await _rows(db, select(declared_levels))
    assert (level.unit, level.number, level.level) == (COMMUNITY, 1, "red")


async def test_an_overdue_task_of_the_longest_kind_is_kept(
    db: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(db, clock, webhook)
    apply = ApplyTaskMessages(
        db, lambda: NO_ABERRATION, lambda: world.routing, "Asia/Shanghai", clock
    )
    due = clock.now - timedelta(hours=2)
    overdue = task_message(
        TaskEvent.OVERDUE,
        task="ef" * 16,
        unit=COMMUNITY,
        kind=KIND,
        due=due,
        state=TaskState.ISSUED,
        pid="3" * 32,
        at=clock.now - timedelta(minutes=5),
        urgency="urgent",
    )
    await apply([overdue])
    [kept] = await _rows(db, select(task_alerts))
    assert (kept.task, kept.kind) == ("ef" * 16, KIND)
    [alert] = [a for a in await world.alerts() if a.rule == "task_overdue"]
    assert KIND in alert.window
