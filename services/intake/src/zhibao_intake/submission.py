"""The submission use case, shared by the HTTP and NATS entry points.

Decode a body, admit each item, publish what was admitted concurrently,
and answer per item. Nothing is reported "accepted" before JetStream acked it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from zhibao_intake import metrics
from zhibao_intake.domain.admission import (
    NO_PLACES,
    NO_TASKS,
    Admitted,
    Reporter,
    ResultChecks,
    admit,
)
from zhibao_intake.domain.outcome import (
    FieldError,
    ItemResult,
    RejectionCode,
    Status,
    SubmissionResult,
)
from zhibao_intake.domain.pseudonym import Pseudonymiser
from zhibao_intake.domain.storage_budget import stored_size
from zhibao_intake.domain.task_results import TaskBook, stale_for
from zhibao_intake.publisher import BusUnavailable, PublishOutcome
from zhibao_shared.events import CONTENT_TYPE_BATCH, CONTENT_TYPE_SINGLE, EventType
from zhibao_shared.hierarchy import Registry
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.places import Places
from zhibao_shared.tokens import Token

log = structlog.get_logger(__name__)

ACCEPTED_CONTENT_TYPES = frozenset({"application/json", CONTENT_TYPE_SINGLE, CONTENT_TYPE_BATCH})


class SubmissionRefused(ValueError):
    """The whole submission is refused (before looking at items)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Publisher(Protocol):
    """Stores admitted events; per event True for a duplicate, False when new, or the failure."""

    async def publish(self, batch: Sequence[Admitted]) -> list[PublishOutcome]:
        """Publish and wait for the store's acknowledgements."""
        ...


def _refuse(status: int, reason: str, message: str) -> SubmissionRefused:
    metrics.SUBMISSIONS_REFUSED.labels(reason).inc()
    return SubmissionRefused(status, reason, message)


def decode_items(body: bytes, content_type: str | None, max_items: int) -> list[Any]:
    """The submitted events as a list (one item for a single event)."""
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise _refuse(
            415,
            "content_type",
            "the content type is not accepted; use "
            f"{CONTENT_TYPE_SINGLE}, {CONTENT_TYPE_BATCH} or application/json",
        )
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _refuse(400, "encoding", "the body is not valid UTF-8") from None
    except RecursionError:
        raise _refuse(400, "nesting", "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise _refuse(400, "json", f"the body is not valid JSON: {exc}") from None
    if media_type == CONTENT_TYPE_BATCH and not isinstance(document, list):
        raise _refuse(400, "batch", "a CloudEvents batch must be a JSON array")
    items = document if isinstance(document, list) else [document]
    if not items:
        raise _refuse(400, "batch", "the batch is empty")
    if len(items) > max_items:
        raise _refuse(413, "batch_size", f"a batch holds at most {max_items} events")
    return items


class TaskFeed(TaskBook, Protocol):
    """The tasks intake knows of, and a way to bring that knowledge up to date."""

    @property
    def ready(self) -> bool:
        """True once the tasks stream as it was at start has been read."""
        ...

    async def catch_up(self, within_s: float) -> bool:
        """Read what the tasks stream holds now; False when that took too long."""
        ...


@dataclass(frozen=True)
class TaskResults:
    """What intake needs to judge task results: the tasks, the note sealer, and how long
    a result for a task not known yet waits for the tasks stream."""

    tasks: TaskFeed
    notes: NoteSealer
    catch_up_s: float


def _task_named(item: Any) -> tuple[str, str] | None:
    """The task a submitted task result names and the community reporting it (before
    validation), else None."""
    if not isinstance(item, dict) or item.get("type") != EventType.TASK_RESULT.value:
        return None
    data, community = item.get("data"), item.get("subject")
    task = data.get("task") if isinstance(data, dict) else None
    return (task, community) if isinstance(task, str) and isinstance(community, str) else None


@dataclass(frozen=True)
class Submitted:
    """A submission's answer and the bytes the events stream stored for it (new events
    acknowledged; repeats, refusals and events answered unavailable not)."""

    result: SubmissionResult
    stored_bytes: int


class SubmissionService:
    """Admits and publishes submitted events."""

    def __init__(
        self,
        registry: Registry,
        pseudonymiser: Pseudonymiser,
        publisher: Publisher,
        zone: ZoneInfo,
        task_results: TaskResults | None = None,
        places: Places = NO_PLACES,
    ) -> None:
        self._registry = registry
        self._zone = zone
        self._places = places
        self._pseudonymiser = pseudonymiser
        self._publisher = publisher
        self._task_results = task_results

    async def _result_checks(self, items: Sequence[Any]) -> ResultChecks:
        """How task results are judged; a result for a task not known, or known to be with
        another community (or known before the projection was ready), first waits for the
        tasks stream as it is now."""
        config = self._task_results
        if config is None:
            return NO_TASKS
        tasks = config.tasks
        named = [task for task in map(_task_named, items) if task is not None]
        stale = named and (not tasks.ready or stale_for(tasks, named))
        synced = await tasks.catch_up(config.catch_up_s) if stale else True
        return ResultChecks(tasks, synced, config.notes)

    async def submit(self, items: Sequence[Any], token: Token) -> Submitted:
        """Admit each item and publish the admitted ones; per-item results in order, and
        what the stream stored."""
        checks = await self._result_checks(items)
        reporter = Reporter(token=token, received_at=datetime.now(UTC))
        admissions = [
            admit(
                i,
                item,
                reporter=reporter,
                registry=self._registry,
                pseudonymiser=self._pseudonymiser,
                zone=self._zone,
                results=checks,
                places=self._places,
            )
            for i, item in enumerate(items)
        ]
        admitted = [a for a in admissions if isinstance(a, Admitted)]
        firsts: dict[str, Admitted] = {}
        for one in admitted:  # the first of repeats, in submission order
            firsts.setdefault(one.msg_id, one)
        published = await self._store(list(firsts.values()))
        by_key = {result.index: result for result in published}
        results = [
            self._result(a, by_key[firsts[a.msg_id].index]) if isinstance(a, Admitted) else a
            for a in admissions
        ]
        self._count(results, admissions)
        stored = sum(
            stored_size(len(one.payload))
            for one in firsts.values()
            if by_key[one.index].status is Status.ACCEPTED
        )
        return Submitted(SubmissionResult.of(results), stored)

    @staticmethod
    def _result(admitted: Admitted, first: ItemResult) -> ItemResult:
        """A repeat of an event earlier in the same batch answers as its duplicate."""
        if first.index == admitted.index:
            return first
        status = Status.UNAVAILABLE if first.status is Status.UNAVAILABLE else Status.DUPLICATE
        return first.model_copy(update={"index": admitted.index, "status": status})

    async def _store(self, batch: list[Admitted]) -> list[ItemResult]:
        outcomes = await self._publisher.publish(batch) if batch else []
        results = []
        for admitted, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BusUnavailable):
                log.warning("publish_failed", reason=str(outcome), event_type=admitted.type.value)
                results.append(_unavailable(admitted))
                continue
            status = Status.DUPLICATE if outcome else Status.ACCEPTED
            results.append(
                ItemResult(
                    index=admitted.index, id=admitted.id, source=admitted.source, status=status
                )
            )
        return results

    @staticmethod
    def _count(results: list[ItemResult], admissions: list[Admitted | ItemResult]) -> None:
        for result, admission in zip(results, admissions, strict=True):
            if result.status is Status.REJECTED:
                reason = result.code.value if result.code else "invalid"
                metrics.labelled(metrics.EVENTS_REJECTED, reason).inc()
            elif result.status is Status.UNAVAILABLE:
                metrics.EVENTS_UNAVAILABLE.inc()
            elif result.status is Status.DUPLICATE and not isinstance(admission, Admitted):
                # a task result applied before, answered without publishing it again
                metrics.labelled(metrics.EVENTS_DUPLICATE, EventType.TASK_RESULT.value).inc()
            elif isinstance(admission, Admitted):
                counter = (
                    metrics.EVENTS_DUPLICATE
                    if result.status is Status.DUPLICATE
                    else metrics.EVENTS_ACCEPTED
                )
                metrics.labelled(counter, admission.type.value).inc()


def _unavailable(admitted: Admitted) -> ItemResult:
    """The answer for an event the bus did not acknowledge: why, and what to do (the
    bus's own error text stays in the log)."""
    error = FieldError(
        field="(event)",
        message="not known to be stored: the event store did not acknowledge it; "
        "send it again after Retry-After, it is counted once",
    )
    return ItemResult(
        index=admitted.index,
        id=admitted.id,
        source=admitted.source,
        status=Status.UNAVAILABLE,
        code=RejectionCode.BUS_UNAVAILABLE,
        errors=[error],
    )


def http_status(result: SubmissionResult) -> int:
    """The HTTP status that sums up a submission's per-item results.

    202 all stored; 207 some stored, some rejected; 403 all outside the
    token's scope; 422 all rejected; 503 (retry) when NATS did not ack some.
    """
    if result.unavailable:
        return 503
    stored = result.accepted + result.duplicates
    if stored == len(result.results):
        return 202
    if stored:
        return 207
    if all(r.code is RejectionCode.FORBIDDEN for r in result.results):
        return 403
    return 422
