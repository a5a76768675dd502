"""Publishing admitted events to JetStream, de-duplicated by ``Nats-Msg-Id``.

A lone event is one message whose ``Nats-Msg-Id`` is its CloudEvents identity,
so JetStream answers whether it is a repeat. Several events of one district in
a submission go as bundles (CloudEvents JSON batches, at most ``bundle_events``
each) on ``zhibao.events.<district>.bundle``: one message, one acknowledgement
and one consumer delivery for many events. A bundle's ``Nats-Msg-Id`` is a
digest of its events' identities, so a resent submission is recognised as a
whole. An event resent in a different bundle is answered from
:class:`~zhibao_intake.domain.recently_stored.RecentlyStored` when this process
stored it; otherwise it is stored again and skipped by the consumers, which
de-duplicate every event by its identity.

Submissions are published together, group-commit style: one publish is in
flight at a time, and the submissions that arrive while it waits for JetStream's
acknowledgements go out together as soon as it is answered (many single-event
POSTs become one bundle under load, with no timer: an idle service publishes a
lone event at once). A publish's messages are sent back to back with
``publish_async`` and their acknowledgements awaited together.

A submission waits at most the publish timeout in all, not the time the publish in
flight takes and then its own: each is answered "unavailable" when its own timeout
ends, and a publish waits for its acknowledgements until the latest of its
submissions' timeouts (one that arrived a moment ago still gets its whole time).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from zhibao_intake.domain.admission import Admitted
from zhibao_intake.domain.recently_stored import RecentlyStored
from zhibao_intake.jetstream_acks import RefusalAwareJetStream
from zhibao_intake.metrics import BUNDLE_EVENTS, PUBLISH_LATENCY
from zhibao_shared.broker import bus_connected, payload_room
from zhibao_shared.events import bundle_payload
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject

MAX_PENDING = 20_000
#: Why an event is unavailable when its timeout ended before JetStream acknowledged it.
NO_ACK = "no acknowledgement in time"


class BusUnavailable(RuntimeError):
    """JetStream did not acknowledge: the event is not known to be stored."""


PublishOutcome = bool | BusUnavailable
#: A submission waiting to be published: its events, when its timeout ends (the event
#: loop's clock), and the future its outcomes go to.
_Waiting = tuple[list[Admitted], float, "asyncio.Future[list[PublishOutcome]]"]


@dataclass(frozen=True)
class Message:
    """One bus message and the events (positions in the submission) it carries."""

    subject: str
    payload: bytes
    msg_id: str
    members: tuple[int, ...]


def messages(batch: Sequence[Admitted], bundle_events: int, bundle_bytes: int) -> list[Message]:
    """The messages a submission goes out as: bundles per district, lone events alone.

    A bundle holds at most ``bundle_events`` events and ``bundle_bytes`` bytes of
    payload (the server's maximum payload less room for headers).
    """
    by_district: dict[str, list[int]] = defaultdict(list)
    for position, admitted in enumerate(batch):
        by_district[admitted.district].append(position)
    out: list[Message] = []
    for district, positions in by_district.items():
        out += [
            _message(batch, district, run)
            for run in _runs(batch, positions, bundle_events, bundle_bytes)
        ]
    return out


def _runs(
    batch: Sequence[Admitted], positions: list[int], most: int, max_bytes: int
) -> list[tuple[int, ...]]:
    runs: list[list[int]] = []
    size = max_bytes
    for position in positions:
        length = len(batch[position].payload) + 1  # and a comma
        if not runs or len(runs[-1]) == most or size + length > max_bytes:
            runs.append([])
            size = 2  # the brackets
        runs[-1].append(position)
        size += length
    return [tuple(run) for run in runs]


def _message(batch: Sequence[Admitted], district: str, members: tuple[int, ...]) -> Message:
    if len(members) == 1:
        single = batch[members[0]]
        return Message(single.bus_subject, single.payload, single.msg_id, members)
    identities = json.dumps([batch[m].msg_id for m in members]).encode()
    digest = hashlib.sha256(identities).hexdigest()
    payload = bundle_payload([batch[m].payload for m in members])
    return Message(bundle_subject(district), payload, f"bundle {digest}", members)


class JetStreamPublisher:
    """Publishes events and waits for JetStream's acknowledgements."""

    def __init__(
        self,
        broker: NatsBroker,
        timeout_s: float,
        bundle_events: int,
        recently_stored: RecentlyStored,
    ) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self._bundle_events = bundle_events
        self._recent = recently_stored
        self._js: JetStreamContext | None = None
        self._waiting: list[_Waiting] = []
        #: the publish in flight (at most one); also keeps its task referenced
        self._in_flight: asyncio.Task[None] | None = None

    def _context(self) -> JetStreamContext:
        if self._js is None:
            self._js = RefusalAwareJetStream(
                self._broker.connection, publish_async_max_pending=MAX_PENDING
            )
        return self._js

    async def publish(self, batch: Sequence[Admitted]) -> list[PublishOutcome]:
        """Store events; per event True for a duplicate, False when new, or the failure.

        An event in a bundle is a duplicate when this process stored it before or
        when the whole bundle was.
        """
        outcomes: list[PublishOutcome] = [True] * len(batch)
        fresh = [n for n, admitted in enumerate(batch) if admitted.msg_id not in self._recent]
        if not fresh:
            return outcomes
        if not bus_connected(self._broker):
            return [BusUnavailable("not connected to NATS")] * len(batch)
        stored = await self._together([batch[n] for n in fresh])
        for position, outcome in zip(fresh, stored, strict=True):
            outcomes[position] = outcome
        return outcomes

    async def _together(self, batch: list[Admitted]) -> list[PublishOutcome]:
        """Publish with every submission that arrives before the publish in flight
        (if any) is answered.

        Under load many single-event POSTs arrive while one publish waits; their
        events then go out as one bundle and one acknowledgement. Waiting costs them
        less than it saves: a message per event costs every consumer its handling.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[PublishOutcome]] = loop.create_future()
        self._waiting.append((batch, loop.time() + self._timeout_s, future))
        if len(self._waiting) == 1 and self._in_flight is None:
            loop.call_soon(self._flush_waiting)
        return await future

    def _flush_waiting(self) -> None:
        if not self._waiting or self._in_flight is not None:
            return  # the publish in flight takes the waiting ones when it is answered
        waiting, self._waiting = self._waiting, []
        self._in_flight = asyncio.create_task(self._flush(waiting))
        self._in_flight.add_done_callback(self._flushed)

    def _flushed(self, _task: asyncio.Task[None]) -> None:
        self._in_flight = None
        self._flush_waiting()

    async def _flush(self, waiting: list[_Waiting]) -> None:
        # Each submission is answered by its own deadline; the publish waits for the latest.
        loop = asyncio.get_running_loop()
        timers = [loop.call_at(at, _expire, future, len(batch)) for batch, at, future in waiting]
        budget = max(at for _, at, _ in waiting) - loop.time()
        try:
            outcomes = await self._store([a for batch, _, _ in waiting for a in batch], budget)
        except BaseException as exc:
            # Every submission in this flush gets the failure; only cancellation propagates.
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            for timer in timers:
                timer.cancel()
        start = 0
        for batch, _, future in waiting:
            if not future.done():
                future.set_result(outcomes[start : start + len(batch)])
            start += len(batch)

    async def _store(self, batch: list[Admitted], budget_s: float) -> list[PublishOutcome]:
        """Publish ``batch`` and wait at most ``budget_s`` for its acknowledgements (none
        left: not published, every event unavailable)."""
        if budget_s <= 0:
            return [BusUnavailable(NO_ACK)] * len(batch)
        started = time.perf_counter()
        js = self._context()
        outgoing = messages(batch, self._bundle_events, payload_room(self._broker))
        try:
            futures = [
                await js.publish_async(
                    m.subject, m.payload, stream=EVENTS_STREAM, headers={"Nats-Msg-Id": m.msg_id}
                )
                for m in outgoing
            ]
        except (NatsError, OSError) as exc:
            return [BusUnavailable(str(exc) or type(exc).__name__)] * len(batch)
        # One wait for the whole batch (a wait_for per future costs a task each).
        await asyncio.wait(futures, timeout=budget_s)
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        outcomes: list[PublishOutcome] = [BusUnavailable("not published")] * len(batch)
        for message, future in zip(outgoing, futures, strict=True):
            BUNDLE_EVENTS.observe(len(message.members))
            outcome = _outcome(_settle(future))
            for member in message.members:
                outcomes[member] = outcome
            if not isinstance(outcome, BusUnavailable):
                self._recent.add(batch[m].msg_id for m in message.members)
        return outcomes


def _expire(future: asyncio.Future[list[PublishOutcome]], events: int) -> None:
    """Answer a submission whose timeout ended before its publish was acknowledged."""
    if not future.done():
        future.set_result([BusUnavailable(NO_ACK)] * events)


def _settle(future: asyncio.Future[PubAck]) -> PubAck | BaseException:
    if not future.done():
        future.cancel()
        return TimeoutError(NO_ACK)
    return future.exception() or future.result()


def _outcome(ack: PubAck | BaseException) -> PublishOutcome:
    if isinstance(ack, PubAck):
        return bool(ack.duplicate)
    if isinstance(ack, (NatsError, TimeoutError, OSError)):
        return BusUnavailable(str(ack) or type(ack).__name__)
    raise ack
