"""Needs become tasks: the response service's consumer of need events.

A durable consumer (``response-needs``) of the need subjects and the districts'
bundles, acked only after the batch's tasks were written with their ``task_issued``
messages (the outbox publishes them). A message without a need is acked undecoded.
Each need becomes one task whose id is derived from the need's identity
(:func:`zhibao_shared.care_events.need_task_id`): a redelivered need, or the same need
resent in another bundle, finds its task and issues nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError

from zhibao_response.domain.needs import NeedLimits, NeedTask, need_task
from zhibao_response.store import Actor, NewTask, TaskStore
from zhibao_shared.bus_access import NEEDS_DURABLE
from zhibao_shared.care_events import PublishedNeed
from zhibao_shared.consumer import BatchConsumer, ConsumerSpec, Delivery
from zhibao_shared.events import EventType
from zhibao_shared.settings import CONSUMER_LINGER_S
from zhibao_shared.subjects import EVENTS_STREAM, type_filters

NEED_MARK = f'"{EventType.NEED.value}"'.encode()
NEEDS_READ = Counter(
    "zhibao_response_needs_total",
    "Need events read from the events stream: issued as a task, or already issued",
    ["effect"],
)


def needs_consumer_spec(batch_size: int = 200, linger_s: float = CONSUMER_LINGER_S) -> ConsumerSpec:
    """The response service's durable consumer of need events."""
    return ConsumerSpec(
        service="response",
        durable=NEEDS_DURABLE,
        filter_subjects=type_filters(EventType.NEED.short),
        stream=EVENTS_STREAM,
        batch_size=batch_size,
        linger_s=linger_s,
        transient=(OSError, TimeoutError, OperationalError, InterfaceError),
    )


@dataclass
class NeedConsumer(BatchConsumer):
    """The batched consumer, acking messages without a need undecoded."""

    async def _decode(self, msg: Msg) -> list[Delivery] | None:
        if NEED_MARK not in msg.data:
            await msg.ack()
            return None
        return await super()._decode(msg)


class IssueNeeds:
    """The consumer's batch handler: the batch's needs as tasks, in one transaction."""

    def __init__(
        self,
        store: TaskStore,
        limits: NeedLimits,
        names: Callable[[str], str],
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._limits = limits
        self._names = names
        self._on_change = on_change

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Issue the batch's needs not issued before (other events are skipped)."""
        needs = [
            need_task(d.event, self._limits) for d in batch if isinstance(d.event, PublishedNeed)
        ]
        if not needs:
            return
        reporters = {n.id: n.reporter for n in needs}
        issued = await self._store.issue_new(
            [_new_task(n) for n in needs], lambda t: self._actor(reporters[t.id])
        )
        NEEDS_READ.labels("issued").inc(issued)
        NEEDS_READ.labels("known").inc(len(needs) - issued)
        if issued:
            self._on_change()

    def _actor(self, reporter: str) -> Actor:
        """The need's reporter issues its task (a token's name and id)."""
        return Actor(self._names(reporter), reporter)


def _new_task(need: NeedTask) -> NewTask:
    return NewTask(
        need.id,
        need.unit,
        need.kind,
        need.due,
        compound=need.compound,
        pid=need.pid,
        urgency=need.urgency,
    )
