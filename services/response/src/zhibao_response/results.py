"""Task results come back up: the response service's consumer of the events stream.

Intake publishes results like every other event (often in bundles holding a
district's events of every type). The consumer is the shared
:class:`~zhibao_shared.consumer.BatchConsumer` (durable ``response``, acked only
after the batch's transaction committed, poison parked on the dead-letter
stream), with one addition: a message that does not even contain the task-result
type string is acked without being decoded, so the service's cost for the other
events of the stream is a byte search per message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from nats.aio.msg import Msg
from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError

from zhibao_response.domain.results import TASK_RESULT_MARK, Reporter, TaskResult, result_of
from zhibao_response.sealing import Sealer
from zhibao_response.store import TaskStore
from zhibao_shared.consumer import BatchConsumer, ConsumerSpec, Delivery
from zhibao_shared.events import PublishedTaskResult
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.settings import CONSUMER_LINGER_S
from zhibao_shared.subjects import EVENTS_STREAM
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)
TASK_RESULTS = Counter(
    "zhibao_response_task_results_total",
    "Task results read from the events stream: applied, only recorded (task closed or "
    "moved), or repeated (applied before: redelivered)",
    ["effect"],
)
DURABLE = "response"
#: Task results travel alone on their type's subject or inside a district's bundle.
RESULT_SUBJECTS = ("zhibao.events.*.*.task_result", "zhibao.events.*.bundle")


def consumer_spec(batch_size: int = 200, linger_s: float = CONSUMER_LINGER_S) -> ConsumerSpec:
    """The response service's durable consumer of the events stream."""
    return ConsumerSpec(
        service="response",
        durable=DURABLE,
        filter_subjects=RESULT_SUBJECTS,
        stream=EVENTS_STREAM,
        batch_size=batch_size,
        linger_s=linger_s,
        transient=(OSError, TimeoutError, OperationalError, InterfaceError),
    )


@dataclass
class TaskResultConsumer(BatchConsumer):
    """The batched consumer, acking messages without a task result undecoded."""

    async def _decode(self, msg: Msg) -> list[Delivery] | None:
        if TASK_RESULT_MARK not in msg.data:
            await msg.ack()
            return None
        return await super()._decode(msg)


class ReporterNames:
    """A reporting token's name by its id (the id itself for a token unknown here)."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens
        self._names: dict[str, str] = {}

    def __call__(self, token_id: str) -> str:
        """The token's name; the store is read again for an id not seen before."""
        if token_id not in self._names:
            self._names = {token.id: token.name for token in self._tokens.list()}
        return self._names.get(token_id, token_id)


class ApplyResults:
    """The consumer's batch handler: the batch's task results in one transaction."""

    def __init__(
        self,
        store: TaskStore,
        notes: NoteSealer,
        sealer: Sealer,
        names: Callable[[str], str],
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._notes = notes
        self._sealer = sealer
        self._names = names
        self._on_change = on_change

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Apply the batch's task results (other events are skipped); raises to be retried."""
        results = [
            self._result(d.event, d.stream_sequence)
            for d in batch
            if isinstance(d.event, PublishedTaskResult)
        ]
        if not results:
            return
        applied = await self._store.apply_results(results)
        TASK_RESULTS.labels("applied").inc(applied.changed)
        TASK_RESULTS.labels("recorded").inc(applied.recorded)
        TASK_RESULTS.labels("repeated").inc(applied.repeated)
        if applied.changed:
            self._on_change()

    def _result(self, event: PublishedTaskResult, stream_sequence: int) -> TaskResult:
        reporter = Reporter(self._names(event.reporter), event.reporter)
        return result_of(event, stream_sequence, reporter, self._sealed_note(event))

    def _sealed_note(self, event: PublishedTaskResult) -> bytes | None:
        """The note re-sealed for the store (intake sealed it for the bus)."""
        sealed = event.data.sealed_note
        if sealed is None:
            return None
        note = self._notes.open(event.data.task, sealed)
        if note is None:
            log.warning("task_result_note_unreadable", task=event.data.task)
            return None
        return self._sealer.seal(event.data.task, {"note": note})
