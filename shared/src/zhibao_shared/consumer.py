"""The one batched JetStream consumer every Zhibao service uses to read events.

A durable pull consumer on the events stream. Each fetched batch is decoded
(``parse_message``: a message holds one event or a bundle of several) and
handed to an async handler, one :class:`Delivery` per event; the messages are
acknowledged only after the handler returned (that is, after the service
committed its database transaction). Plumbing only, no business logic.

Guarantees:

* **At least once, never lost.** A message is acked only after the handler
  returned. If the handler raises, every message of the batch is nak'd with a
  delay and comes back; handlers must be idempotent (store the dedup key in
  the same transaction as their effects).
* **A poison message does not block the stream.** When a batch fails, its
  messages are retried one by one so a single bad message is isolated. A
  message that fails on its own ``max_deliver`` times, or that cannot be
  decoded at all, is published to the dead-letter stream
  (``zhibao.deadletter.<service>.<original subject>``, stream
  ``ZHIBAO_DEADLETTER``) and then terminated. In a bundle the culprit is one
  event: a failing bundle is retried event by event, and only an event that
  cannot be decoded, or still fails on the ``max_deliver``-th delivery, is
  parked (alone, with ``Zhibao-Bundle-Index``); the bundle's other events are
  applied and the bundle acked.
* **Memory follows the batch size, not the backlog.** A fetch asks for as many
  messages as hold about ``batch_size`` events on average, and never more than
  would hold a few batches if each were as large as the largest message lately
  (before the first, the largest bundle there can be); a fetch's events go to the
  handler ``batch_size`` at a time.
* **Transient failures are not poison.** Exceptions listed in ``transient``
  (by default ``OSError`` and ``TimeoutError``; a service adds its database
  driver's connection errors) nak the batch with a delay but never send
  anything to the dead-letter stream, however often they repeat.

Partitioning: ``filter_subjects`` (e.g. ``[district_events("640106")]``)
limits an instance to some districts. ``deliver_from_start`` (the default)
makes a new durable start at the first message of the stream.

Usage::

    from zhibao_shared.consumer import BatchConsumer, ConsumerSpec, Delivery

    async def apply(batch: Sequence[Delivery]) -> None:
        async with session.begin():        # one transaction per batch
            ...                            # effects + dedup keys of batch
        # returning normally = "committed": the consumer acks the batch now

    consumer = BatchConsumer(
        js,                                # nats JetStreamContext (broker's or nats.connect's)
        ConsumerSpec(service="alerts", durable="alerts", batch_size=100),
        apply,
    )
    await consumer.start()                 # declares streams + durable consumer
    task = asyncio.create_task(consumer.run())
    ...
    await consumer.stop()                  # finishes the current batch, then returns
    await task

``consumer.pending()`` gives the lag (messages not yet acked) for metrics and
for "caught up" checks; ``run_until_caught_up()`` drains what the stream held
when it was called (used by rebuilds).

Why not faststream's batch subscriber: it acks or nacks a batch as a whole and
its reject-on-error default would drop a batch; dead-lettering one message of a
batch and delayed naks need per-message control, which nats-py's
``pull_subscribe``/``fetch`` gives directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from zhibao_shared.broker import dead_letter_stream_config, declare_stream, release_pull
from zhibao_shared.events import (
    MAX_BUNDLE_EVENTS,
    PublishedEvent,
    parse_message,
    parse_published,
    published_payload,
)
from zhibao_shared.settings import CONSUMER_LINGER_S, ZhibaoSettings
from zhibao_shared.subjects import (
    DEAD_LETTER_STREAM,
    EVENTS_ALL,
    EVENTS_STREAM,
    dead_letter_subject,
)

log = structlog.get_logger(__name__)

BATCH_SIZE = Histogram(
    "zhibao_consumer_batch_size",
    "Messages per fetched batch",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = Histogram(
    "zhibao_consumer_batch_seconds",
    "Time to handle and ack one batch",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGES_ACKED = Counter(
    "zhibao_consumer_messages_acked_total", "Messages handled and acked", ["service"]
)
EVENTS_HANDLED = Counter(
    "zhibao_consumer_events_total",
    "Events in acked messages (a bundle message holds several)",
    ["service"],
)
BATCHES_FAILED = Counter(
    "zhibao_consumer_batches_failed_total", "Batches whose handler raised (nak'd)", ["service"]
)
DEAD_LETTERED = Counter(
    "zhibao_consumer_dead_lettered_total",
    "Messages parked on the dead-letter stream",
    ["service", "reason"],
)
LAG = Gauge(
    "zhibao_consumer_lag", "Messages in the stream not yet acked by this consumer", ["service"]
)

DEAD_REASON_HEADER = "Zhibao-Dead-Reason"
ORIGINAL_SUBJECT_HEADER = "Zhibao-Original-Subject"
STREAM_SEQUENCE_HEADER = "Zhibao-Stream-Sequence"
BUNDLE_INDEX_HEADER = "Zhibao-Bundle-Index"


@dataclass(frozen=True)
class Delivery:
    """One decoded event of a batch, with the message it came in (a bundle holds several)."""

    event: PublishedEvent
    subject: str
    stream_sequence: int
    num_delivered: int


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]
_Decoded = tuple[Msg, list[Delivery]]


def _groups(decoded: list[_Decoded], max_events: int) -> list[list[_Decoded]]:
    """Consecutive messages in handler calls of about ``max_events`` events each.

    A fetch of bundles could otherwise hand one transaction a hundred times
    the configured batch; a message is never split (it is acked as a whole).
    """
    groups: list[list[_Decoded]] = []
    events = max_events
    for item in decoded:
        if events >= max_events:
            groups.append([])
            events = 0
        groups[-1].append(item)
        events += len(item[1])
    return groups


#: A fetch takes at most about this many batches of events, when its messages are as
#: large as the largest lately. Sized by the largest alone, batches of bundles of mixed
#: sizes (intake splits a submission by district) were half full: 7 % more CPU an event.
SPREAD = 4


@dataclass
class MessageSizes:
    """How many events the messages of the last fetches held (bundles hold many)."""

    #: Events per message, a running mean: the lag in events.
    mean: float = 1.0
    #: Events in the largest message lately, halving per fetch down to what is seen;
    #: None before the first message (the largest bundle there can be is assumed).
    largest: float | None = None

    def messages_for(self, events: int) -> int:
        """Messages to fetch for about ``events`` events: as many as the mean message
        holds, but never so many that messages as large as the largest lately would
        hold more than :data:`SPREAD` times ``events`` (a backlog of bundles is not
        taken ``events`` bundles at a time, and mixed sizes still fill a batch)."""
        largest = self.largest or MAX_BUNDLE_EVENTS
        return max(1, events // round(max(self.mean, largest / SPREAD)))

    def fetched(self, messages: int, events: Sequence[int]) -> None:
        """A fetch brought ``messages`` messages; ``events``: the events of each decoded."""
        self.mean = 0.7 * self.mean + 0.3 * max(1.0, sum(events) / messages)
        largest = float(max(events, default=1))
        self.largest = largest if self.largest is None else max(largest, self.largest / 2)


@dataclass(frozen=True)
class ConsumerSpec:
    """How a service consumes the events stream."""

    service: str
    durable: str
    filter_subjects: tuple[str, ...] = (EVENTS_ALL,)
    stream: str = EVENTS_STREAM
    batch_size: int = 200
    #: How long one fetch may wait. nats-py's long poll holds a fetch until the batch is full
    #: or this expires, so under a light or steady load it is also the latency a batch adds
    #: (0.5 s here put the benchmark's POST -> rollup p50 at ~300 ms at 100 events/s). An
    #: idle consumer costs one small request per interval.
    fetch_timeout_s: float = 0.05
    #: How long a consumer that found nothing waits for the next message, asking for one:
    #: such a fetch returns as soon as a message arrives (it waits for no batch to fill),
    #: so idling costs one request per interval instead of one per ``fetch_timeout_s``
    #: without delaying the first event after a quiet spell.
    idle_wait_s: float = 0.5
    #: After a batch smaller than asked for, how long to wait before the next fetch, so
    #: the events arriving meanwhile are handled together: under a stream of single
    #: events, one transaction and one commit per few dozen events instead of per few.
    #: An event waits at most this long; a full batch (a backlog) is followed at once,
    #: and the first event after a quiet spell is fetched as soon as it arrives.
    linger_s: float = CONSUMER_LINGER_S
    max_deliver: int = 5
    nak_delay_s: float = 1.0
    ack_wait_s: float = 60.0
    deliver_from_start: bool = True
    transient: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    def consumer_config(self) -> ConsumerConfig:
        """The JetStream consumer configuration (redelivery is unlimited server-side:
        the cap is enforced here so capped messages go to the dead-letter stream)."""
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            deliver_policy=DeliverPolicy.ALL if self.deliver_from_start else DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max(1000, self.batch_size * 4),
            filter_subjects=list(self.filter_subjects),
        )


@dataclass
class _Stats:
    batches: int = 0
    #: Messages acked, and the events they held (a bundle holds several).
    acked: int = 0
    events: int = 0
    dead_lettered: int = 0
    failures: int = 0


@dataclass
class BatchConsumer:
    """A durable, batched pull consumer; see the module docstring for usage."""

    js: JetStreamContext
    spec: ConsumerSpec
    handler: BatchHandler
    dead_letter_settings: ZhibaoSettings | None = None
    stats: _Stats = field(default_factory=_Stats)
    _subscription: JetStreamContext.PullSubscription | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: Events per message lately: fetches and the lag in events are sized by them.
    _sizes: MessageSizes = field(default_factory=MessageSizes)
    #: The last fetch found nothing: the next one waits for a single message.
    _idle: bool = False
    #: The last step's fetch brought fewer messages than it asked for (cleared by every
    #: step, set only by a fetch that returned): linger before the next.
    _short: bool = False

    async def start(self) -> None:
        """Declare the dead-letter stream and the durable consumer, and bind to it."""
        settings = self.dead_letter_settings or ZhibaoSettings()
        await declare_stream(self.js, dead_letter_stream_config(settings))
        await self.js.add_consumer(self.spec.stream, self.spec.consumer_config())
        self._subscription = await self.js.pull_subscribe_bind(
            durable=self.spec.durable, stream=self.spec.stream
        )
        log.info("consumer_started", durable=self.spec.durable, filters=self.spec.filter_subjects)

    async def run(self) -> None:
        """Fetch and handle batches until :meth:`stop` is called, then unsubscribe."""
        try:
            await self._loop()
        finally:
            await self.close()

    async def close(self) -> None:
        """Drop the pull subscription (the durable consumer stays on the server); what
        was delivered but not fetched yet is handed back for redelivery at once."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await release_pull(subscription)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.step()
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                # Unacked messages come back after ack_wait; nothing is lost.
                log.warning("consumer_step_failed", error=repr(exc))
                await asyncio.sleep(self.spec.nak_delay_s)
                continue
            if self._short and self.spec.linger_s > 0:
                await self._linger()

    async def _linger(self) -> None:
        """Wait ``linger_s`` for more events to gather, or until :meth:`stop`."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.spec.linger_s)

    async def run_until_caught_up(self) -> int:
        """Handle batches until everything pending at call time is acked; returns batches."""
        batches = 0
        while await self.pending() > 0 and not self._stopping.is_set():
            if await self.step():
                batches += 1
        return batches

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand is handled and acked."""
        self._stopping.set()

    async def pending(self) -> int:
        """Messages this consumer has not acked yet (its lag)."""
        info = await self.js.consumer_info(self.spec.stream, self.spec.durable)
        lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        LAG.labels(self.spec.service).set(lag)
        return lag

    async def present(self) -> bool:
        """True while the stream and this durable consumer exist on the server.

        Readiness asks it: a service whose stream or consumer an operator deleted
        consumes nothing, so it must not report ready.
        """
        try:
            await self.js.consumer_info(self.spec.stream, self.spec.durable, timeout=2.0)
        except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
            return False
        return True

    async def pending_events(self) -> int:
        """About how many events the lag holds (messages x recent events per message)."""
        return round(await self.pending() * self._sizes.mean)

    async def step(self) -> bool:
        """Fetch one batch and handle it; False when nothing was waiting."""
        assert self._subscription is not None, "call start() first"
        after_idle, self._short = self._idle, False
        try:
            if after_idle:
                wanted, timeout = 1, self.spec.idle_wait_s
            else:
                wanted = self._sizes.messages_for(self.spec.batch_size)
                timeout = self.spec.fetch_timeout_s
            messages = await self._subscription.fetch(wanted, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            self._idle = True
            return False
        except nats.errors.Error as exc:
            log.warning("consumer_fetch_failed", error=str(exc))
            await asyncio.sleep(self.spec.nak_delay_s)
            return False
        self._idle = not messages
        # After an idle wait the one message asked for is a short batch too: the events
        # following the first after a quiet spell gather for linger_s.
        self._short = bool(messages) and (after_idle or len(messages) < wanted)
        if messages:
            await self._handle(messages)
        return bool(messages)

    async def _handle(self, messages: list[Msg]) -> None:
        started = time.perf_counter()
        decoded: list[_Decoded] = []
        for msg in messages:
            deliveries = await self._decode(msg)
            if deliveries is not None:
                decoded.append((msg, deliveries))
        self._sizes.fetched(len(messages), [len(deliveries) for _, deliveries in decoded])
        groups = _groups(decoded, self.spec.batch_size)
        for n, group in enumerate(groups):
            if self._stopping.is_set():  # draining: the rest comes back at once to whoever runs
                for msg, _ in (item for rest in groups[n:] for item in rest):
                    await msg.nak()
                break
            await self._handle_decoded(group)
        self.stats.batches += 1
        BATCH_SIZE.labels(self.spec.service).observe(len(messages))
        BATCH_SECONDS.labels(self.spec.service).observe(time.perf_counter() - started)

    async def _decode(self, msg: Msg) -> list[Delivery] | None:
        """The message's events; a bundle's undecodable events are dead-lettered alone."""
        meta = msg.metadata
        try:
            events = parse_message(msg.data)
        except (ValidationError, ValueError) as exc:
            parts = _bundle_parts(msg.data)
            if parts is None:
                await self._dead_letter(msg, "undecodable", str(exc)[:500])
                return None
            events = []
            for index, part in enumerate(parts):
                try:
                    events.append(parse_published(part))
                except (ValidationError, ValueError) as bad:
                    await self._dead_letter_part(msg, index, part, "undecodable", str(bad)[:500])
        if not events:
            await msg.ack()
            return None
        return [
            Delivery(event, msg.subject, meta.sequence.stream, meta.num_delivered)
            for event in events
        ]

    async def _handle_decoded(self, group: list[_Decoded]) -> None:
        try:
            await self.handler([d for _, deliveries in group for d in deliveries])
        except self.spec.transient as exc:
            await self._failed(group, exc, transient=True)
            return
        except Exception as exc:
            if len(group) > 1:
                # Isolate the culprit: retry each message on its own.
                log.warning("consumer_batch_failed_splitting", error=repr(exc))
                for one in group:
                    await self._handle_decoded([one])
                return
            if len(group[0][1]) > 1:
                await self._handle_bundle_event_by_event(group[0])
                return
            await self._failed(group, exc, transient=False)
            return
        await self._ack(group)

    async def _handle_bundle_event_by_event(self, item: _Decoded) -> None:
        """A failing bundle, one event per handler call: only a failing event is parked."""
        msg, deliveries = item
        for index, delivery in enumerate(deliveries):
            try:
                await self.handler([delivery])
            except self.spec.transient as exc:
                await self._failed([item], exc, transient=True)
                return
            except Exception as exc:
                if msg.metadata.num_delivered < self.spec.max_deliver:
                    await self._failed([item], exc, transient=False)  # all back, later
                    return
                part = published_payload(delivery.event)
                await self._dead_letter_part(msg, index, part, "max_deliver", repr(exc)[:500])
        await self._ack([item])

    async def _failed(self, group: list[_Decoded], exc: BaseException, *, transient: bool) -> None:
        self.stats.failures += 1
        BATCHES_FAILED.labels(self.spec.service).inc()
        log.warning("consumer_batch_failed", error=repr(exc), transient=transient, size=len(group))
        for msg, _ in group:
            if not transient and msg.metadata.num_delivered >= self.spec.max_deliver:
                await self._dead_letter(msg, "max_deliver", repr(exc)[:500])
            else:
                await msg.nak(delay=self.spec.nak_delay_s)

    async def _ack(self, group: list[_Decoded]) -> None:
        for msg, _ in group:
            await msg.ack()
        events = sum(len(deliveries) for _, deliveries in group)
        self.stats.acked += len(group)
        self.stats.events += events
        MESSAGES_ACKED.labels(self.spec.service).inc(len(group))
        EVENTS_HANDLED.labels(self.spec.service).inc(events)

    async def _dead_letter_part(
        self, msg: Msg, index: int, part: bytes, reason: str, detail: str
    ) -> None:
        """Park one event of a bundle (the bundle's other events go on)."""
        await self._dead_letter(msg, reason, detail, part=(index, part))

    async def _dead_letter(
        self, msg: Msg, reason: str, detail: str, part: tuple[int, bytes] | None = None
    ) -> None:
        """Park a message (terminated), or with ``part`` one event of a bundle (not)."""
        meta = msg.metadata
        msg_id = f"{self.spec.durable}:{meta.stream}:{meta.sequence.stream}"
        headers = {
            DEAD_REASON_HEADER: f"{reason}: {detail}".replace("\n", " "),
            ORIGINAL_SUBJECT_HEADER: msg.subject,
            STREAM_SEQUENCE_HEADER: str(meta.sequence.stream),
            "Nats-Msg-Id": msg_id if part is None else f"{msg_id}:{part[0]}",
        }
        if part is not None:
            headers[BUNDLE_INDEX_HEADER] = str(part[0])
        await self.js.publish(
            dead_letter_subject(self.spec.service, msg.subject),
            msg.data if part is None else part[1],
            headers=headers,
            stream=DEAD_LETTER_STREAM,
        )
        if part is None:
            await msg.term()
        self.stats.dead_lettered += 1
        DEAD_LETTERED.labels(self.spec.service, reason).inc()
        log.error(
            "consumer_dead_lettered",
            reason=reason,
            subject=msg.subject,
            stream_sequence=meta.sequence.stream,
            bundle_index=None if part is None else part[0],
        )


def _bundle_parts(raw: bytes) -> list[bytes] | None:
    """A bundle's events as separate JSON documents, or None when it is not a JSON array."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, list):
        return None
    return [json.dumps(part, ensure_ascii=False).encode() for part in document]
