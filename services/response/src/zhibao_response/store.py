"""The task store: tasks, their history, declarations and the bus outbox, in one database.

Every change is written with its history row and the bus message announcing it
in one transaction, so nothing is announced that did not happen and nothing
happens unannounced (the outbox loop publishes what is written).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Update, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_response.announcements import level_announcement
from zhibao_response.domain.results import TaskResult, applicable
from zhibao_response.domain.tasks import OPEN_STATES, acting_level, closes
from zhibao_response.tables import declarations, outbox, task_history, task_results, tasks
from zhibao_shared.subjects import task_subject
from zhibao_shared.task_events import TaskEvent, TaskState, task_message
from zhibao_shared.tokens import NAME_MAX, Token

Clock = Callable[[], datetime]
_OPEN = [state.value for state in OPEN_STATES]


@dataclass(frozen=True)
class Actor:
    """Who acted: a token's name and id (never its secret)."""

    name: str
    token: str
    #: The token's scopes (none for a task a need raised, or a result's reporter).
    scopes: tuple[str, ...] = ()

    @classmethod
    def of(cls, token: Token) -> Actor:
        """The token as an actor. A name longer than new tokens may have (made before the
        limit) is cut to it: it is the author of level and point messages."""
        return cls(token.name[:NAME_MAX], token.id, tuple(token.scopes))


@dataclass(frozen=True)
class NewTask:
    """A task ready to store: validated, its person pseudonymised and details sealed."""

    id: str
    unit: str
    kind: str
    due: datetime
    compound: str | None = None
    pid: str | None = None
    sealed: bytes | None = None
    declaration_id: str | None = None
    measure: int | None = None
    #: a need's task: normal or urgent (None for other tasks)
    urgency: str | None = None
    #: the keyed digest of what the request asked for (tasks issued under a key)
    fingerprint: str | None = None


@dataclass(frozen=True)
class Declaration:
    """A declared response level, as stored."""

    id: str
    unit: str
    level: str
    reason: str
    compounds: tuple[str, ...]
    measures: list[dict[str, Any]]
    declared_by: str
    declared_at: datetime


@dataclass(frozen=True)
class ResultsApplied:
    """What a batch of task results did: how many changed their task, how many were only
    recorded in its history (the task closed or moved on), how many had been applied
    before (redelivered, or repeated in a bundle)."""

    changed: int
    recorded: int
    repeated: int


class Conflict(RuntimeError):
    """The task changed meanwhile (its state or unit is not what the caller saw)."""


class KeyReused(ValueError):
    """An ``Idempotency-Key`` already named a request with other tasks."""


def _same(stored: Any, task: NewTask) -> bool:
    """True when the stored task is the one ``task`` would issue: what its request asked
    for (its fingerprint: unit, contact and note included; the task's unit may have moved
    since, by a transfer); for one issued before fingerprints were kept, its kind, due
    time, person (pseudonym) and compound."""
    if stored.request_fingerprint is not None:
        return bool(stored.request_fingerprint == task.fingerprint)
    return bool(
        (stored.kind, stored.due, stored.pid, stored.compound)
        == (task.kind, task.due, task.pid, task.compound)
    )


def _message(
    event: TaskEvent,
    row: Any,
    state: TaskState,
    at: datetime,
    from_unit: str | None = None,
    *,
    requires_visit: bool = False,
    result: str | None = None,
) -> dict[str, Any]:
    body = task_message(
        event,
        task=row["id"],
        unit=row["unit"],
        kind=row["kind"],
        due=row["due"],
        state=state,
        pid=row["pid"],
        at=at,
        from_unit=from_unit,
        requires_visit=requires_visit,
        urgency=row.get("urgency"),
        result=result,
    )
    return {
        "msg_id": uuid.uuid4().hex,
        "subject": task_subject(row["unit"], event.value),
        "body": body.to_bus(),
    }


async def _updated(
    conn: AsyncConnection, rows: list[dict[str, Any]], change: Update
) -> list[dict[str, Any]]:
    """Apply ``change`` to the tasks read as ``rows`` (its own conditions re-checked as
    it writes); the tasks it changed, as they are now, in the order of ``rows``.

    A task read a moment ago may have changed since (a result applied, a transfer, a
    close, from another connection): what is written and announced follows the task as
    the update found it, not as it was read.
    """
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    result = await conn.execute(change.where(tasks.c.id.in_(ids)).returning(*tasks.c))
    current = {row.id: dict(row._mapping) for row in result}
    return [current[i] for i in ids if i in current]


def _history(
    task: Any, action: TaskState | str, state: TaskState, actor: Actor, at: datetime, **more: Any
) -> dict[str, Any]:
    return {
        "task_id": task["id"],
        "at": at,
        "action": str(action),
        "state": state.value,
        "unit": task["unit"],
        "from_unit": more.get("from_unit"),
        "worker": more.get("worker"),
        "actor": actor.name,
        "actor_token": actor.token,
    }


class TaskStore:
    """Reads and writes tasks; every write in one transaction with its history and message."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, visit_kinds: frozenset[str] = frozenset()
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._visit_kinds = visit_kinds

    def _announce(
        self,
        event: TaskEvent,
        row: Any,
        state: TaskState,
        at: datetime,
        from_unit: str | None = None,
        result: str | None = None,
    ) -> dict[str, Any]:
        """The outbox row of a task message (says whether the task's kind needs a visit,
        and which task result made the change, if one did)."""
        visit = self.requires_visit(row["kind"])
        return _message(event, row, state, at, from_unit, requires_visit=visit, result=result)

    def requires_visit(self, kind: str) -> bool:
        """True when a task of ``kind`` is done only by a visit (a phone call, or a change of
        state without a result, cannot complete it): ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS."""
        return kind in self._visit_kinds

    async def issue(self, new: Sequence[NewTask], actor: Actor) -> None:
        """Store new tasks (all or none), their history and their ``issued`` messages."""
        async with self._engine.begin() as conn:
            await self._issue(conn, new, actor, self._clock())

    async def _issue(
        self, conn: AsyncConnection, new: Sequence[NewTask], actor: Actor, now: datetime
    ) -> None:
        if not new:
            return
        rows = [
            {
                "id": t.id,
                "unit": t.unit,
                "kind": t.kind,
                "due": t.due,
                "state": TaskState.ISSUED.value,
                "compound": t.compound,
                "pid": t.pid,
                "sealed": t.sealed,
                "issuer_token": actor.token,
                "issuer_name": actor.name,
                "issuer_scope": acting_level(actor.scopes, t.unit),
                "issued_at": now,
                "updated_at": now,
                "declaration_id": t.declaration_id,
                "measure": t.measure,
                "urgency": t.urgency,
                "request_fingerprint": t.fingerprint,
            }
            for t in new
        ]
        await conn.execute(insert(tasks), rows)
        issued = TaskState.ISSUED
        await conn.execute(
            insert(task_history), [_history(r, issued, issued, actor, now) for r in rows]
        )
        await conn.execute(
            insert(outbox), [self._announce(TaskEvent.ISSUED, r, issued, now) for r in rows]
        )

    async def issue_once(self, new: Sequence[NewTask], actor: Actor) -> bool:
        """Issue tasks whose ids an ``Idempotency-Key`` derived (all or none): True when
        issued now, False when the same tasks were issued before (a retried request).
        :class:`KeyReused` when the ids name other tasks (the key of another request)."""
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as conn:
                    query = select(
                        tasks.c.id,
                        tasks.c.kind,
                        tasks.c.due,
                        tasks.c.pid,
                        tasks.c.compound,
                        tasks.c.request_fingerprint,
                    ).where(tasks.c.id.in_([t.id for t in new]))
                    stored = {row.id: row for row in await conn.execute(query)}
                    if not stored:
                        await self._issue(conn, new, actor, self._clock())
                        return True
            except IntegrityError:  # the same request, issued by a concurrent call
                if attempt == 2:
                    raise
                continue
            if len(stored) == len(new) and all(_same(stored[t.id], t) for t in new):
                return False
            raise KeyReused(
                "this Idempotency-Key was sent before with other tasks; use a new key for "
                "a new request"
            )
        raise AssertionError("unreachable")

    async def issue_new(self, new: Sequence[NewTask], actor_of: Callable[[NewTask], Actor]) -> int:
        """Issue those of ``new`` whose id is not known yet (a need's task is derived from
        the need, so a redelivered need finds its task); how many were issued."""
        now = self._clock()
        async with self._engine.begin() as conn:
            ids = list({t.id for t in new})
            query = select(tasks.c.id).where(tasks.c.id.in_(ids))
            known = set((await conn.execute(query)).scalars())
            fresh: dict[str, NewTask] = {}
            for task in new:
                if task.id not in known:
                    fresh.setdefault(task.id, task)
            for task in fresh.values():
                await self._issue(conn, [task], actor_of(task), now)
        return len(fresh)

    async def get(self, task_id: str) -> Row[Any] | None:
        """One task, or None."""
        async with self._engine.connect() as conn:
            result = await conn.execute(select(tasks).where(tasks.c.id == task_id))
            return result.first()

    async def history(self, task_id: str) -> list[Row[Any]]:
        """A task's changes, oldest first."""
        query = (
            select(task_history)
            .where(task_history.c.task_id == task_id)
            .order_by(task_history.c.id)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def list_tasks(
        self, unit: str, state: TaskState | None, limit: int, offset: int
    ) -> list[Row[Any]]:
        """Tasks of ``unit`` and the units below it, soonest due first."""
        query = select(tasks).where(tasks.c.unit.startswith(unit, autoescape=True))
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        query = query.order_by(tasks.c.due, tasks.c.id).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def change(
        self,
        task: Row[Any],
        wanted: TaskState,
        actor: Actor,
        to_unit: str | None = None,
    ) -> None:
        """Move ``task`` (as the caller read it) to ``wanted``; :class:`Conflict` if it changed.

        A transfer re-issues the task to ``to_unit`` (a new community, no worker yet),
        keeping its id and history.
        """
        async with self._engine.begin() as conn:
            await self._change(conn, dict(task._mapping), wanted, actor, to_unit, self._clock())

    async def _change(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        wanted: TaskState,
        actor: Actor,
        to_unit: str | None,
        now: datetime,
        by_result: str | None = None,
    ) -> int:
        """:meth:`change` in the caller's transaction (made by the task result whose
        identity is ``by_result``, if one did); the id of the history row written."""
        values: dict[str, Any] = {"updated_at": now}
        new_state = wanted
        if wanted is TaskState.TRANSFERRED:
            assert to_unit is not None
            new_state = TaskState.ISSUED
            values |= {"unit": to_unit, "worker": None, "overdue_at": None}
        elif closes(wanted):
            values["closed_at"] = now
        values["state"] = new_state.value
        result = await conn.execute(
            update(tasks)
            .where(
                tasks.c.id == row["id"],
                tasks.c.state == row["state"],
                tasks.c.unit == row["unit"],
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise Conflict(row["id"])
        from_unit = row["unit"] if to_unit else None
        after = row | values
        written = await conn.execute(
            insert(task_history)
            .values(_history(after, wanted, new_state, actor, now, from_unit=from_unit))
            .returning(task_history.c.id)
        )
        message = self._announce(TaskEvent.CHANGED, after, wanted, now, from_unit, by_result)
        await conn.execute(insert(outbox).values(message))
        return int(written.scalar_one())

    async def apply_results(self, results: Sequence[TaskResult]) -> ResultsApplied:
        """Apply task results in one transaction (see :mod:`zhibao_response.results`);
        what they did. A result applied before changes nothing."""
        now = self._clock()
        changed = repeated = 0
        async with self._engine.begin() as conn:
            done = await self._known_results(conn, [r.key for r in results])
            for result in results:
                if result.key in done:
                    repeated += 1
                    continue
                done.add(result.key)
                changed += await self._apply_result(conn, result, now)
        return ResultsApplied(changed, len(results) - changed - repeated, repeated)

    @staticmethod
    async def _known_results(conn: AsyncConnection, keys: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(keys), 500):
            query = select(task_results.c.dedup_key).where(
                task_results.c.dedup_key.in_(keys[start : start + 500])
            )
            known.update((await conn.execute(query)).scalars())
        return known

    async def _apply_result(self, conn: AsyncConnection, result: TaskResult, now: datetime) -> int:
        """Change the task as the result says, or record the result alone when the task
        is no longer open with the reporting community (closed, or moved on meanwhile)."""
        found = (await conn.execute(select(tasks).where(tasks.c.id == result.task))).first()
        row = dict(found._mapping) if found is not None else None
        history_id: int | None = None
        actor = Actor(result.actor.name, result.actor.token)
        applies = row is not None and applicable(
            TaskState(row["state"]),
            row["unit"],
            row["kind"],
            self.requires_visit(row["kind"]),
            result,
        )
        if row is not None and applies:
            history_id = await self._change(
                conn, row, result.wanted, actor, result.to_unit, now, result.key
            )
        elif row is not None:
            state = TaskState(row["state"])
            written = await conn.execute(
                insert(task_history)
                .values(_history(row, "result", state, actor, now))
                .returning(task_history.c.id)
            )
            history_id = int(written.scalar_one())
        await conn.execute(
            insert(task_results).values(
                dedup_key=result.key,
                task_id=result.task,
                history_id=history_id,
                stream_sequence=result.stream_sequence,
                outcome=result.outcome,
                method=result.method,
                measures=json.dumps(list(result.measures)),
                note=result.sealed_note,
                applied=applies,
            )
        )
        return int(applies)

    async def results_of(self, history_ids: Iterable[int]) -> dict[int, Row[Any]]:
        """The task results behind history rows, by history id."""
        ids = list(history_ids)
        if not ids:
            return {}
        query = select(task_results).where(task_results.c.history_id.in_(ids))
        async with self._engine.connect() as conn:
            return {r.history_id: r for r in (await conn.execute(query)).all()}

    async def assign(self, task: Row[Any], worker: str | None, actor: Actor) -> None:
        """Assign an open task to a grid worker (None: unassign)."""
        now = self._clock()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task.id,
                    tasks.c.unit == task.unit,
                    tasks.c.state.in_(_OPEN),
                )
                .values(worker=worker, updated_at=now)
            )
            if result.rowcount != 1:
                raise Conflict(task.id)
            state = TaskState(task.state)
            row = dict(task._mapping)
            await conn.execute(
                insert(task_history).values(
                    _history(row, "assigned", state, actor, now, worker=worker)
                )
            )

    async def mark_overdue(self, limit: int = 1000) -> int:
        """Announce open tasks past due (once each); how many were announced."""
        now = self._clock()
        query = (
            select(tasks)
            .where(tasks.c.state.in_(_OPEN), tasks.c.due < now, tasks.c.overdue_at.is_(None))
            .order_by(tasks.c.due)
            .limit(limit)
        )
        async with self._engine.begin() as conn:
            found = [dict(r._mapping) for r in await conn.execute(query)]
            # still open and past due: a result, a transfer or a close may have come since
            rows = await _updated(
                conn,
                found,
                update(tasks)
                .where(tasks.c.state.in_(_OPEN), tasks.c.due < now, tasks.c.overdue_at.is_(None))
                .values(overdue_at=now),
            )
            if not rows:
                return 0
            messages = [
                self._announce(TaskEvent.OVERDUE, r, TaskState(r["state"]), now) for r in rows
            ]
            await conn.execute(insert(outbox), messages)
        return len(rows)

    async def purge(self, after: timedelta) -> int:
        """Delete the personal details of tasks closed at least ``after`` ago; how many. A
        request's fingerprint goes too: it is a digest of them (a contact's phone number
        could be guessed back from it with the key and the rest of the row)."""
        now = self._clock()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(tasks)
                .where(tasks.c.closed_at <= now - after, tasks.c.sealed.is_not(None))
                .values(sealed=None, request_fingerprint=None, purged_at=now)
            )
            closed = select(tasks.c.id).where(tasks.c.closed_at <= now - after)
            await conn.execute(
                update(task_results)
                .where(task_results.c.task_id.in_(closed), task_results.c.note.is_not(None))
                .values(note=None)
            )
        return int(result.rowcount)

    async def declare(
        self,
        declaration: Declaration,
        planned: Sequence[NewTask],
        actor: Actor,
    ) -> list[str]:
        """Record a declaration: close the open tasks of the unit's previous one, issue the
        new one's; the ids of the tasks closed. :class:`Conflict` when another declaration
        for the unit was recorded meanwhile."""
        try:
            return await self._declare(declaration, planned, actor)
        except IntegrityError:
            raise Conflict(declaration.unit) from None

    async def _declare(
        self, declaration: Declaration, planned: Sequence[NewTask], actor: Actor
    ) -> list[str]:
        now = declaration.declared_at
        async with self._engine.begin() as conn:
            previous = await self._current(conn, declaration.unit)
            closed = await self._cancel_open(conn, previous.id, actor, now) if previous else []
            number = previous.number + 1 if previous else 1
            await conn.execute(
                insert(declarations).values(
                    id=declaration.id,
                    unit=declaration.unit,
                    number=number,
                    level=declaration.level,
                    reason=declaration.reason,
                    compounds=json.dumps(list(declaration.compounds), ensure_ascii=False),
                    measures=json.dumps(declaration.measures, ensure_ascii=False),
                    declared_by=actor.name,
                    declared_token=actor.token,
                    declared_at=now,
                )
            )
            announced = level_announcement(
                declaration.id, declaration.unit, declaration.level, number, now, actor.name
            )
            await conn.execute(insert(outbox).values(announced))
            await self._issue(conn, planned, actor, now)
        return closed

    async def issue_within(
        self, conn: AsyncConnection, new: Sequence[NewTask], actor: Actor, now: datetime
    ) -> None:
        """:meth:`issue` inside the caller's transaction (a point issues its measures so)."""
        await self._issue(conn, new, actor, now)

    async def cancel_within(
        self, conn: AsyncConnection, task_ids: Sequence[str], actor: Actor, now: datetime
    ) -> list[str]:
        """Cancel the still open tasks among ``task_ids`` in the caller's transaction (with
        history and messages); the ids cancelled."""
        query = select(tasks).where(tasks.c.id.in_(list(task_ids)), tasks.c.state.in_(_OPEN))
        rows = [dict(r._mapping) for r in await conn.execute(query)]
        return await self._cancel_rows(conn, rows, actor, now)

    async def _cancel_open(
        self, conn: AsyncConnection, declaration_id: str, actor: Actor, now: datetime
    ) -> list[str]:
        query = select(tasks).where(
            tasks.c.declaration_id == declaration_id, tasks.c.state.in_(_OPEN)
        )
        rows = [dict(r._mapping) for r in await conn.execute(query)]
        return await self._cancel_rows(conn, rows, actor, now)

    async def _cancel_rows(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], actor: Actor, now: datetime
    ) -> list[str]:
        cancelled = TaskState.CANCELLED
        # those still open: a result or another close may have come since they were read
        rows = await _updated(
            conn,
            rows,
            update(tasks)
            .where(tasks.c.state.in_(_OPEN))
            .values(state=cancelled.value, closed_at=now, updated_at=now),
        )
        if not rows:
            return []
        await conn.execute(
            insert(task_history),
            [_history(r, cancelled, cancelled, actor, now) for r in rows],
        )
        await conn.execute(
            insert(outbox), [self._announce(TaskEvent.CHANGED, r, cancelled, now) for r in rows]
        )
        return [r["id"] for r in rows]

    @staticmethod
    async def _current(conn: AsyncConnection, unit: str) -> Row[Any] | None:
        query = (
            select(declarations)
            .where(declarations.c.unit == unit)
            .order_by(declarations.c.number.desc())
            .limit(1)
        )
        return (await conn.execute(query)).first()

    async def declarations(self, unit: str) -> list[Declaration]:
        """A unit's declarations, latest first."""
        query = (
            select(declarations)
            .where(declarations.c.unit == unit)
            .order_by(declarations.c.number.desc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Declaration(
                r.id,
                r.unit,
                r.level,
                r.reason,
                tuple(json.loads(r.compounds)),
                json.loads(r.measures),
                r.declared_by,
                r.declared_at,
            )
            for r in rows
        ]

    async def declared_tasks(self, declaration_id: str) -> Sequence[Any]:
        """The tasks a declaration issued (measure, state, due, closed_at)."""
        query = select(tasks.c.measure, tasks.c.state, tasks.c.due, tasks.c.closed_at).where(
            tasks.c.declaration_id == declaration_id
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def pending_messages(self, limit: int) -> list[Row[Any]]:
        """The oldest messages not yet published."""
        query = select(outbox).order_by(outbox.c.id).limit(limit)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def pending_count(self) -> int:
        """How many messages are not yet published."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())

    async def published(self, rows: Iterable[Row[Any]]) -> None:
        """Forget messages that were published (``rows`` as :meth:`pending_messages` read
        them). Matched by id and message id: on SQLite an emptied outbox gives its ids
        out again, and another instance on the same database may have published these
        rows meanwhile and written new ones under the same ids."""
        read = list(rows)
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(outbox).where(
                    outbox.c.id.in_([r.id for r in read]),
                    outbox.c.msg_id.in_([r.msg_id for r in read]),
                )
            )

    async def counts(self) -> dict[str, int]:
        """Tasks per state (for the metrics)."""
        query = select(tasks.c.state, func.count()).group_by(tasks.c.state)
        async with self._engine.connect() as conn:
            return {state: int(n) for state, n in (await conn.execute(query)).all()}
