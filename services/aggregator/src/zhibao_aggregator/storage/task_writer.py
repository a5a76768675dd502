"""Applying task messages in one transaction, idempotently and in any order.

Each message is stored as a fact keyed by (task, at, event, state): a redelivered
message is recognised and skipped. A task's spans are then recomputed from all
its facts (:func:`zhibao_aggregator.domain.tasks.spans`), so a message that
arrives late, or before the one that preceded it, gives the same result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date

from sqlalchemy import RowMapping, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.tasks import Span, TaskFact, spans
from zhibao_aggregator.storage.task_tables import task_facts, task_spans
from zhibao_aggregator.storage.writer import as_utc
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.hierarchy import lineage
from zhibao_shared.task_events import TaskMessage, TaskState

_CHUNK = 500
FactKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class TasksApplied:
    """What one batch of task messages changed."""

    applied: int
    duplicates: int
    changed: frozenset[tuple[str, date]]


def fact_of(message: TaskMessage) -> TaskFact:
    """The stored form of a message (its pseudonym is not kept)."""
    return TaskFact(
        task=message.task,
        at=as_utc(message.at).astimezone(UTC),
        event=message.event,
        state=message.state,
        unit=message.unit,
        from_unit=message.from_unit,
        kind=message.kind,
        due=message.due.astimezone(UTC),
    )


def _key(fact: TaskFact) -> FactKey:
    return (fact.task, fact.at.astimezone(UTC).isoformat(), fact.event, fact.state.value)


def units_of(code: str) -> tuple[str, ...]:
    """A unit and the units above it (codes nest by prefix)."""
    return lineage(code)


async def apply_task_messages(
    conn: AsyncConnection, messages: Sequence[TaskMessage], calendar: Calendar, today: date
) -> TasksApplied:
    """Apply the not-yet-applied messages; the caller owns the transaction.

    Each task touched is locked first (PostgreSQL), so two instances never
    recompute one task from different facts at once.
    """
    facts = [fact_of(m) for m in messages]
    ids = sorted({f.task for f in facts})
    await lock_names(conn, (f"task {task}" for task in ids))
    known = await _known_facts(conn, ids)
    seen = {_key(f) for fs in known.values() for f in fs}
    fresh: list[TaskFact] = []
    for fact in facts:
        if _key(fact) not in seen:
            seen.add(_key(fact))
            fresh.append(fact)
    if not fresh:
        return TasksApplied(0, len(facts), frozenset())
    await conn.execute(task_facts.insert(), [_fact_row(f) for f in fresh])
    touched = sorted({f.task for f in fresh})
    old = await _spans(conn, touched)
    new: list[Span] = []
    for task in touched:
        new += spans([*known.get(task, []), *(f for f in fresh if f.task == task)])
    await _replace_spans(conn, touched, new)
    units = {s.unit for s in (*old, *new)}
    days = {calendar.day(f.at) for f in fresh} | {today}
    changed = frozenset((u, d) for unit in units for u in units_of(unit) for d in days)
    return TasksApplied(len(fresh), len(facts) - len(fresh), changed)


def _fact_row(fact: TaskFact) -> dict[str, object]:
    return {
        "task": fact.task,
        "at": fact.at,
        "event": fact.event,
        "state": fact.state.value,
        "unit": fact.unit,
        "from_unit": fact.from_unit,
        "kind": fact.kind,
        "due": fact.due,
    }


async def _known_facts(conn: AsyncConnection, ids: list[str]) -> dict[str, list[TaskFact]]:
    found: dict[str, list[TaskFact]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        rows = await conn.execute(
            select(task_facts).where(task_facts.c.task.in_(ids[start : start + _CHUNK]))
        )
        for r in rows.mappings():
            found[r["task"]].append(
                TaskFact(
                    task=r["task"],
                    at=r["at"],
                    event=r["event"],
                    state=TaskState(r["state"]),
                    unit=r["unit"],
                    from_unit=r["from_unit"],
                    kind=r["kind"],
                    due=r["due"],
                )
            )
    return found


async def _spans(conn: AsyncConnection, ids: list[str]) -> list[Span]:
    out: list[Span] = []
    for start in range(0, len(ids), _CHUNK):
        rows = await conn.execute(
            select(task_spans).where(task_spans.c.task.in_(ids[start : start + _CHUNK]))
        )
        out += [span_of(r) for r in rows.mappings()]
    return out


def span_of(r: RowMapping) -> Span:
    """A stored span row as a :class:`Span`."""
    return Span(
        task=r["task"],
        number=r["number"],
        unit=r["unit"],
        kind=r["kind"],
        due=r["due"],
        opened_at=r["opened_at"],
        closed_at=r["closed_at"],
        outcome=TaskState(r["outcome"]) if r["outcome"] else None,
        issued_at=r["issued_at"],
    )


async def _replace_spans(conn: AsyncConnection, ids: list[str], new: list[Span]) -> None:
    for start in range(0, len(ids), _CHUNK):
        await conn.execute(
            delete(task_spans).where(task_spans.c.task.in_(ids[start : start + _CHUNK]))
        )
    if new:
        rows = [
            {
                "task": s.task,
                "number": s.number,
                "unit": s.unit,
                "kind": s.kind,
                "due": s.due,
                "opened_at": s.opened_at,
                "closed_at": s.closed_at,
                "outcome": s.outcome.value if s.outcome else None,
                "issued_at": s.issued_at,
            }
            for s in new
        ]
        for start in range(0, len(rows), _CHUNK):
            await conn.execute(task_spans.insert(), rows[start : start + _CHUNK])
