"""Issuing and showing tasks: pseudonymise the person, seal the details, decide who sees them."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from zhibao_response.domain.tasks import TaskIn, is_open, scopes_exactly
from zhibao_response.sealing import Sealer
from zhibao_response.store import NewTask
from zhibao_shared.pseudonym import Pseudonymiser
from zhibao_shared.task_events import TaskState
from zhibao_shared.tokens import Token


def new_task_id() -> str:
    """A random task id (128 bits, hex)."""
    return uuid.uuid4().hex


def keyed_task_id(token_id: str, idempotency_key: str, index: int) -> str:
    """The id of the ``index``-th task of a request sent with an ``Idempotency-Key``: the
    same token, key and position name the same task, so a retried request finds the tasks
    it issued the first time instead of issuing them again."""
    material = f"issue {token_id} {idempotency_key} {index}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class TaskDesk:
    """Turns validated tasks into storable ones and stored ones into what a token may see."""

    def __init__(self, sealer: Sealer, pseudonymiser: Pseudonymiser) -> None:
        self._sealer = sealer
        self._pseudonymiser = pseudonymiser

    def prepare(self, task: TaskIn, task_id: str | None = None) -> NewTask:
        """A task to store (under ``task_id``, or a new random id): its person
        pseudonymised, its personal details sealed; under a derived id (an
        ``Idempotency-Key``'s), with its request's fingerprint."""
        fingerprint = self._fingerprint(task) if task_id is not None else None
        task_id = task_id or new_task_id()
        details: dict[str, Any] = {}
        pid = None
        if task.person is not None:
            pid = self._pseudonymiser.pseudonym(task.person, task.unit).pid
            details["person"] = task.person.model_dump()
        if task.contact is not None:
            details["contact"] = task.contact.model_dump(exclude_none=True)
        if task.note is not None:
            details["note"] = task.note
        sealed = self._sealer.seal(task_id, details) if details else None
        return NewTask(
            task_id,
            task.unit,
            task.kind,
            task.due,
            task.compound,
            pid,
            sealed,
            fingerprint=fingerprint,
        )

    def _fingerprint(self, task: TaskIn) -> str:
        """The keyed digest of everything ``task`` asks for (its due time as an instant)."""
        asked = task.model_dump(mode="json", exclude_none=True)
        asked["due"] = task.due.astimezone(UTC).isoformat()
        return self._pseudonymiser.fingerprint(json.dumps(asked, sort_keys=True))

    def prepare_all(
        self, tasks: Sequence[TaskIn], ids: Sequence[str] | None = None
    ) -> list[NewTask]:
        """:meth:`prepare` for each task, in order (under ``ids`` when given)."""
        if ids is None:
            return [self.prepare(task) for task in tasks]
        return [self.prepare(task, task_id) for task, task_id in zip(tasks, ids, strict=True)]

    @staticmethod
    def may_see_details(token: Token, task: Row[Any]) -> bool:
        """The assigned community's own token, or the token that issued the task."""
        return token.id == task.issuer_token or scopes_exactly(token.scopes, task.unit)

    @staticmethod
    def may_see_pseudonym(token: Token, task: Row[Any]) -> bool:
        """The assigned community's own token only. Not the issuer: anyone allowed to
        issue could name a guessed ID number and read back its pseudonym, then find it
        on other tasks (a psychological-help need) or in alert keys above a community."""
        return scopes_exactly(token.scopes, task.unit)

    def view(self, task: Row[Any], token: Token, now: datetime) -> dict[str, Any]:
        """A task as ``token`` may see it: personal details only for those allowed."""
        state = TaskState(task.state)
        out: dict[str, Any] = {
            "id": task.id,
            "unit": task.unit,
            "kind": task.kind,
            "due": task.due.isoformat(),
            "state": state.value,
            "overdue": is_open(state) and now > task.due,
            "compound": task.compound,
            "worker": task.worker,
            "issued_by": task.issuer_name,
            "issued_at": task.issued_at.isoformat(),
            "updated_at": task.updated_at.isoformat(),
            "closed_at": task.closed_at.isoformat() if task.closed_at else None,
            "declaration": task.declaration_id,
            "person_pid": task.pid if self.may_see_pseudonym(token, task) else None,
            "urgency": task.urgency,
        }
        out |= self._details(task, token)
        return out

    def result_view(
        self, result: Row[Any] | None, task: Row[Any], token: Token
    ) -> dict[str, Any] | None:
        """A task result behind a history row: its note only for those who see details."""
        if result is None:
            return None
        out: dict[str, Any] = {
            "outcome": result.outcome,
            "method": result.method,
            "measures": json.loads(result.measures),
            "applied": result.applied,
        }
        opened = None
        if result.note is None:
            status = "none"
        elif not self.may_see_details(token, task):
            status = "withheld"
        else:
            opened = self._sealer.open(task.id, result.note)
            status = "unreadable" if opened is None else "shown"
        return out | {"note": (opened or {}).get("note"), "note_status": status}

    def _details(self, task: Row[Any], token: Token) -> dict[str, Any]:
        if task.purged_at is not None:
            return {"details": "purged"}
        if task.sealed is None:
            return {"details": "none"}
        if not self.may_see_details(token, task):
            return {"details": "withheld"}
        opened = self._sealer.open(task.id, task.sealed)
        if opened is None:
            return {"details": "unreadable"}
        return {"details": "shown", **opened}
