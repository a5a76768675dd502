"""No value the contract admits can fail a database write, continued (issue 13).

Beyond screenings, cases, isolations and daily reports (``test_contract_lengths``):
corrections (held, then applied: their own and the corrected event's longest id and
source, a 500-character reason, replacement labels), key-person registrations and needs
(64-character compound, building and grid labels), task results (every measure, the
longest kind and sealed note), the response service's task, level and point messages,
and the audit trail's lines of such events, each on SQLite and PostgreSQL. Ids, sources
and labels are Chinese where the contract admits it (three bytes a character in UTF-8):
every value is read back whole, not merely written without an error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.test_audit_projection import DAY_1, A, _at, _project, _publish_trail
from tests.aggregator.test_contract_lengths import COMMUNITY, LABEL, _event
from zhibao_aggregator.bootstrap import reader, rules
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.corrections import timed_key
from zhibao_aggregator.response_feed import store
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.audit import TrailQuery, read_trail
from zhibao_aggregator.storage.care import register
from zhibao_aggregator.storage.care_tables import key_persons, need_tasks
from zhibao_aggregator.storage.tables import (
    applied_events,
    case_facts,
    epidemic_points,
    held_corrections,
    isolation_facts,
    level_declarations,
)
from zhibao_aggregator.storage.task_tables import task_facts, task_spans
from zhibao_aggregator.storage.task_writer import apply_task_messages
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.care_events import PublishedKeyPerson, PublishedNeed
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import (
    MAX_CORRECTION_REASON,
    MAX_ID_LENGTH,
    MAX_SOURCE_LENGTH,
    PublishedCorrection,
    TaskMeasure,
    parse_published,
)
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.response_events import LevelMessage, PointMessage
from zhibao_shared.task_events import TaskEvent, TaskState, task_message
from zhibao_shared.tokens import TokenStore

pytestmark = pytest.mark.integration

#: Other 64-character labels (a replacement's, a grid's).
COMPOUND, BUILDING, GRID = "苑" * 64, "栋" * 64, "格" * 64
#: The longest reason a correction may give.
REASON = "误" * MAX_CORRECTION_REASON
#: The longest reporter (attribution) intake writes.
REPORTER = "报" * 64
#: The longest task kind the contract admits (``TASK_KIND_PATTERN``: 40 characters).
KIND = "k" + "_" * 38 + "z"
#: The longest author the response service's messages admit (a token's name).
AUTHOR = "署" * 200
#: Registered places of the community (the event names them beside the labels).
PLACES = {
    "compound_id": f"{COMMUNITY}-C001",
    "building_id": f"{COMMUNITY}-C001-B001",
    "grid_id": f"{COMMUNITY}-G001",
}
PID = "c" * 32


def wide(n: int, kind: str, data: dict[str, Any]) -> Delivery:
    """The event of :func:`_event` with a Chinese id and source of the longest lengths."""
    plain = _event(n, kind, data).event
    event = plain.model_copy(
        update={
            "id": str(n).rjust(MAX_ID_LENGTH, "编"),
            "source": f"/{COMMUNITY}/".ljust(MAX_SOURCE_LENGTH, "源"),
            "reporter": REPORTER,
        }
    )
    return Delivery(event, "s", n, 1)


def correcting(n: int, original: Delivery, **body: Any) -> Delivery:
    """A correction of ``original`` (its id and source at the longest) with the longest
    reason: a retraction, or a replacement when ``body`` carries ``type`` and ``data``."""
    corrects = {"source": original.event.source, "id": original.event.id}
    action = "replace" if "data" in body else "retract"
    return wide(n, "correction", {"corrects": corrects, "action": action, "reason": REASON, **body})


async def _rows(engine: AsyncEngine, statement: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(statement)).all())


async def _apply(engine: AsyncEngine, settings: AggregatorSettings, *batch: Delivery) -> int:
    async with engine.begin() as conn:
        applied = await apply_batch(conn, list(batch), rules(settings))
    return applied.applied


async def test_a_held_correction_with_the_longest_values_is_kept_then_applied_whole(
    settings: AggregatorSettings, engine: AsyncEngine
) -> None:
    case = wide(
        1,
        "case",
        {
            "person": {"pid": PID},
            "classification": "suspected",
            "compound": LABEL,
            "building": LABEL,
            **{k: v for k, v in PLACES.items() if k != "building_id"},
        },
    )
    replacement = {
        "person": {"pid": PID},
        "classification": "confirmed",
        "compound": COMPOUND,
        "building": BUILDING,
        **PLACES,
    }
    fix = correcting(2, case, type="zhibao.case.v1", data=replacement)
    assert isinstance(fix.event, PublishedCorrection)
    assert len(fix.event.dedup_key) == len(case.event.dedup_key) == 12 + 256 + 128 + 2

    assert await _apply(engine, settings, fix) == 1  # its event is not known yet: held
    [held] = await _rows(engine, select(held_corrections))
    assert (held.dedup_key, held.corrected_key) == (fix.event.dedup_key, case.event.dedup_key)
    kept = parse_published(held.payload)
    assert isinstance(kept, PublishedCorrection)
    assert kept.data.reason == REASON and kept.data.corrects.source == case.event.source

    assert await _apply(engine, settings, case) == 1  # the event comes: the correction applies
    assert await _rows(engine, select(held_corrections)) == []
    [applied] = await _rows(
        engine,
        select(applied_events.c.corrected_by).where(
            applied_events.c.dedup_key == case.event.dedup_key
        ),
    )
    assert applied.corrected_by == timed_key(fix.event)
    [fact] = await _rows(engine, select(case_facts))
    assert (fact.dedup_key, fact.classification) == (case.event.dedup_key, "confirmed")
    assert (fact.compound, fact.building) == (COMPOUND, BUILDING)
    assert (fact.compound_id, fact.building_id, fact.grid_id) == tuple(PLACES.values())
    day = case.event.time.astimezone(reader(settings, engine).calendar.zone).date()
    figures = await reader(settings, engine).figures(COMMUNITY, day)
    assert (figures["new_suspected"], figures["new_confirmed"]) == (0, 1)


async def test_a_screening_with_the_longest_labels_is_retracted_with_the_longest_reason(
    settings: AggregatorSettings, engine: AsyncEngine
) -> None:
    fever = wide(
        3,
        "screening",
        {
            "temperature_c": 38.6,
            "site": "household",
            "compound": LABEL,
            "building": LABEL,
            "grid": GRID,
            "person": {"pid": PID},
            **PLACES,
        },
    )
    day = fever.event.time.astimezone(reader(settings, engine).calendar.zone).date()
    assert await _apply(engine, settings, fever) == 1
    assert (await reader(settings, engine).figures(COMMUNITY, day))["fevers"] == 1
    retraction = correcting(4, fever, type="zhibao.screening.v1")
    assert await _apply(engine, settings, retraction) == 1
    assert (await reader(settings, engine).figures(COMMUNITY, day))["fevers"] == 0
    stored = dict(
        await _rows(engine, select(applied_events.c.dedup_key, applied_events.c.corrected_by))
    )
    assert isinstance(retraction.event, PublishedCorrection)
    assert stored == {
        fever.event.dedup_key: timed_key(retraction.event),
        retraction.event.dedup_key: None,
    }


async def test_a_key_person_and_a_need_with_the_longest_labels_are_on_the_register_whole(
    settings: AggregatorSettings, engine: AsyncEngine
) -> None:
    places = {"compound": LABEL, "building": BUILDING, "grid": GRID, **PLACES}
    person = {"pid": PID}
    registration = wide(5, "keyperson", {"person": person, "category": "dialysis", **places})
    need = wide(6, "need", {"person": person, "category": "medical", "urgency": "urgent", **places})
    assert isinstance(registration.event, PublishedKeyPerson)
    assert isinstance(need.event, PublishedNeed)
    assert await _apply(engine, settings, registration, need) == 2

    async with engine.connect() as conn:
        [shown] = await register(conn, COMMUNITY)
    assert (shown.pid, shown.category) == (PID, "dialysis")
    assert (shown.compound, shown.building, shown.grid) == (LABEL, BUILDING, GRID)
    assert (shown.compound_id, shown.building_id, shown.grid_id) == tuple(PLACES.values())
    [row] = await _rows(engine, select(key_persons.c.changed_key))
    assert row.changed_key == registration.event.dedup_key
    [task] = await _rows(engine, select(need_tasks))
    assert (task.task, task.pid, task.category, task.urgency) == (
        need.event.task_id,
        PID,
        "medical",
        "urgent",
    )


async def test_a_task_result_with_every_measure_and_the_longest_kind_and_note(
    settings: AggregatorSettings, engine: AsyncEngine
) -> None:
    task = "f" * 32
    result = wide(
        7,
        "task_result",
        {
            "task": task,
            "outcome": "done",
            "method": "visit",
            "measures": [m.value for m in TaskMeasure],
            "until": (datetime.now(UTC) + timedelta(days=14)).date().isoformat(),
            "person": {"pid": PID},
            "kind": KIND,
            "sealed_note": "n" * 4096,
        },
    )
    assert await _apply(engine, settings, result) == 1
    [fact] = await _rows(engine, select(isolation_facts))
    assert (fact.pid, fact.dedup_key, fact.action, fact.kind) == (
        PID,
        result.event.dedup_key,
        "start",
        "home",
    )

    now = datetime.now(UTC).replace(microsecond=0)
    messages = [
        task_message(
            event,
            task=task,
            unit=COMMUNITY,
            kind=KIND,
            due=now + timedelta(hours=24),
            state=state,
            pid=PID,
            at=now + timedelta(minutes=n),
            requires_visit=True,
            urgency="urgent",
        )
        for n, (event, state) in enumerate(
            [(TaskEvent.ISSUED, TaskState.ISSUED), (TaskEvent.CHANGED, TaskState.DONE)]
        )
    ]
    calendar = Calendar.named(settings.timezone)
    async with engine.begin() as conn:
        applied = await apply_task_messages(conn, messages, calendar, calendar.today(now))
    assert applied.applied == 2
    assert {r.kind for r in await _rows(engine, select(task_facts.c.kind))} == {KIND}
    [span] = await _rows(engine, select(task_spans))
    assert (span.task, span.kind, span.outcome) == (task, KIND, "done")


async def test_levels_and_points_with_the_longest_labels_and_authors_are_stored_whole(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    level = LevelMessage(
        declaration="d" * 32,
        unit=COMMUNITY,
        level="red",
        number=1,
        declared_at=now,
        declared_by=AUTHOR,
    )
    point = PointMessage(
        event="point_lifted",
        point="e" * 32,
        unit=COMMUNITY,
        compound=COMPOUND,
        building=BUILDING,
        start=now - timedelta(days=3),
        declared_at=now - timedelta(days=3),
        declared_by=AUTHOR,
        lifted_at=now,
        lifted_by="解" * 200,
    )
    await store(engine, [level, point])
    [declared] = await _rows(engine, select(level_declarations))
    assert (declared.declaration, declared.level, declared.declared_by) == (
        level.declaration,
        "red",
        AUTHOR,
    )
    [stored] = await _rows(engine, select(epidemic_points))
    assert (stored.compound, stored.building) == (COMPOUND, BUILDING)
    assert (stored.declared_by, stored.lifted_by) == (AUTHOR, "解" * 200)


async def test_the_audit_trail_keeps_corrections_and_care_events_whole(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine
) -> None:
    """Intake's lines of admitted events (a correction with what it corrects and why, a
    key person, a need) with Chinese ids and sources of the longest lengths."""
    source = f"/{A}/".ljust(MAX_SOURCE_LENGTH, "源")
    correction = {
        "corrects": {"source": source, "id": "原" * MAX_ID_LENGTH},
        "action": "retract",
        "reason": REASON,
        "type": "zhibao.screening.v1",
    }
    lines: list[dict[str, Any]] = [
        {
            "status": "accepted",
            "id": str(n).rjust(MAX_ID_LENGTH, "编"),
            "source": source,
            "subject": A,
            "type": f"zhibao.{kind}.v1",
            "time": _at(DAY_1, 7),
        }
        for n, kind in enumerate(("correction", "keyperson", "need"))
    ]
    lines[0]["correction"] = correction
    record = {
        "at": _at(DAY_1, 9),
        "channel": "http",
        "remote": "10.0.0.7",
        "token": "t1",
        "token_name": "名" * 200,
        "person": "人" * 64,
        "status": 200,
        "events": lines,
    }
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens, [record])
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        rows, _ = await read_trail(conn, TrailQuery(scopes=(A,)), None, 100)
    stored = sorted((r for r in rows if r["kind"] == "event"), key=lambda r: str(r["type"]))
    assert [(r["type"], r["event_id"], r["event_source"]) for r in stored] == [
        ("zhibao.correction.v1", lines[0]["id"], source),
        ("zhibao.keyperson.v1", lines[1]["id"], source),
        ("zhibao.need.v1", lines[2]["id"], source),
    ]
    assert stored[0]["detail"] == correction
    assert {(r["token_name"], r["person"]) for r in stored} == {("名" * 200, "人" * 64)}
