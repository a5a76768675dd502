"""Broker factory and stream declarations: how every service talks to NATS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import nats.errors
import nats.js.errors
import structlog
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from zhibao_shared.background import cancel_and_wait
from zhibao_shared.bus_access import inbox_prefix
from zhibao_shared.settings import ZhibaoSettings, nats_servers
from zhibao_shared.subjects import (
    AUDIT_ALL,
    AUDIT_STREAM,
    DEAD_LETTER_ALL,
    DEAD_LETTER_STREAM,
    EVENTS_ALL,
    EVENTS_STREAM,
    TASKS_ALL,
    TASKS_STREAM,
)

log = structlog.get_logger(__name__)
#: Bytes of a message's maximum payload left for its headers (the server counts both).
HEADER_ROOM = 4096


def make_broker(settings: ZhibaoSettings, *, name: str) -> NatsBroker:
    """A broker that reconnects for ever: a NATS restart must not kill a service.

    ``ZHIBAO_NATS_URL`` may list several servers (comma-separated): the broker
    then fails over to another node when its node goes away. Replies come back on
    the service's own inbox prefix, which no other bus user may subscribe to.
    """
    return NatsBroker(
        nats_servers(settings.nats_url),
        name=f"zhibao-{name}",
        inbox_prefix=inbox_prefix(name),
        connect_timeout=2,
        reconnect_time_wait=1,
        max_reconnect_attempts=-1,
        ping_interval=5,
        max_outstanding_pings=2,
        graceful_timeout=getattr(settings, "shutdown_grace_s", 15.0),
        log_level=logging.DEBUG,
    )


DAY_S = 24 * 3600.0


def events_stream_config(settings: ZhibaoSettings) -> StreamConfig:
    """The event log: every accepted event, kept (a rebuild replays it from the start).

    Bounded in bytes (and, if configured, age). When it is full the server refuses
    new events (intake answers 503 and clients keep them) rather than dropping
    stored ones; ``zhibao_stream_bytes`` / ``zhibao_stream_max_bytes`` and the
    shipped Prometheus rule warn long before.
    """
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENTS_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_bytes=settings.events_max_bytes,
        max_age=settings.events_max_age_days * DAY_S,
        num_replicas=settings.stream_replicas,
        duplicate_window=settings.dedup_window_s,
    )


def dead_letter_stream_config(settings: ZhibaoSettings) -> StreamConfig:
    """Messages consumers gave up on, kept for an operator to inspect and replay."""
    return StreamConfig(
        name=DEAD_LETTER_STREAM,
        subjects=[DEAD_LETTER_ALL],
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=settings.stream_replicas,
        max_bytes=settings.dead_letter_max_bytes,
        max_age=settings.dead_letter_max_age_days * DAY_S,
    )


def audit_stream_config(settings: ZhibaoSettings) -> StreamConfig:
    """The accountability trail: append-only (the server refuses deletes and purges).

    Records expire only by age. A full stream refuses new records rather than dropping
    old ones, so nobody (intake included) can shorten the trail by flooding it; refusals
    without a valid token are aggregated per window, and ``ZhibaoStreamFilling`` warns.
    """
    return StreamConfig(
        name=AUDIT_STREAM,
        subjects=[AUDIT_ALL],
        storage=StorageType.FILE,
        num_replicas=settings.stream_replicas,
        max_age=settings.audit_max_age_days * DAY_S,
        max_bytes=settings.audit_max_bytes,
        discard=DiscardPolicy.NEW,
        deny_delete=True,
        deny_purge=True,
    )


def tasks_stream_config(settings: ZhibaoSettings) -> StreamConfig:
    """The response service's task messages (issued, changed, overdue), kept for consumers
    (the alerts service raising ``task_overdue``, rollups of tasks) that were away.

    Bounded in age and bytes (``ZHIBAO_TASKS_MAX_AGE_DAYS``, ``ZHIBAO_TASKS_MAX_BYTES``),
    the oldest dropped first."""
    return StreamConfig(
        name=TASKS_STREAM,
        subjects=[TASKS_ALL],
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=settings.stream_replicas,
        max_bytes=settings.tasks_max_bytes,
        max_age=settings.tasks_max_age_days * DAY_S,
        duplicate_window=settings.dedup_window_s,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Declare a stream if missing; bring an existing one's settings up to date.

    Only the operator may update a stream (``zhibao bus-setup``); services use
    :func:`declare_stream`.
    """
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def declare_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create a stream if it is missing; an existing one is left as the operator set it.

    Service users may not change a stream (its limits are the operator's to set),
    so a service never updates one: creating an existing stream with other settings
    is refused by the server, which a service reports and then uses it as it is.
    """
    assert config.name is not None
    try:
        await js.stream_info(config.name)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:  # created meanwhile, with other settings
        log.warning("stream_settings_differ", stream=config.name, error=str(exc))


async def provision_streams(js: JetStreamContext, settings: ZhibaoSettings) -> None:
    """The operator's step: every stream declared with the configured settings."""
    for config in (
        events_stream_config(settings),
        dead_letter_stream_config(settings),
        audit_stream_config(settings),
        tasks_stream_config(settings),
    ):
        await ensure_stream(js, config)


async def retry_forever(
    action: Callable[[], Awaitable[None]],
    *,
    on_failure: Callable[[Exception], None],
    delay_s: float = 1.0,
) -> None:
    """Run ``action`` until it succeeds (used to connect while NATS is still starting)."""
    while True:
        try:
            await action()
            return
        except Exception as exc:
            on_failure(exc)
            await asyncio.sleep(delay_s)


@asynccontextmanager
async def connecting_in_background(connect: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Within the block, ``connect`` is retried in the background until it succeeds (a
    service answers /healthz while NATS is still starting); cancelled on the way out."""
    task = asyncio.create_task(
        retry_forever(
            connect, on_failure=lambda exc: log.warning("nats_connect_failed", error=str(exc))
        )
    )
    try:
        yield
    finally:
        await cancel_and_wait([task])


async def stop_subscribers(broker: NatsBroker) -> None:
    """Stop taking messages; handlers already running finish (within the broker's
    graceful timeout, ``shutdown_grace_s``).

    A service calls it before its audit trail's last flush, so that what those
    handlers record is in that flush; ``stop_broker`` closes the connection later.
    """
    for subscriber in broker.subscribers:
        with suppress(nats.errors.Error, OSError, TimeoutError):
            await subscriber.stop()


async def release_pull(subscription: JetStreamContext.PullSubscription) -> int:
    """Unsubscribe a pull subscription, first handing back what no fetch took yet.

    A fetch returns at its timeout while the server may still be sending the batch
    it asked for; nats-py keeps those messages for the next fetch. A consumer that
    stops has no next fetch: unacknowledged, they would wait ``ack_wait`` before
    anyone got them again, so they are nak'd (redelivered at once). Returns how many.
    """
    # nats-py has no public way to take them: its fetch reads the same queue.
    queue = subscription._sub._pending_queue
    handed_back = 0
    with suppress(nats.errors.Error, OSError, TimeoutError):
        while not queue.empty():
            msg = queue.get_nowait()
            if msg.reply and not JetStreamContext.is_status_msg(msg):
                await msg.nak()
                handed_back += 1
    with suppress(nats.errors.Error, OSError, TimeoutError):
        await subscription.unsubscribe()
    return handed_back


def bus_connected(broker: NatsBroker) -> bool:
    """True while the broker has a live NATS connection (for readiness and fast 503s)."""
    state = broker.config.broker_config.connection_state
    return bool(state) and state.connection.is_connected


def payload_room(broker: NatsBroker) -> int:
    """The most payload bytes one message may carry on the broker's connection."""
    return int(broker.connection.max_payload) - HEADER_ROOM


#: How long a stopping service lets NATS drain its subscriptions before closing.
DRAIN_BOUND_S = 5.0


async def stop_broker(broker: NatsBroker, within_s: float = DRAIN_BOUND_S) -> None:
    """Stop a broker, draining subscriptions; a connection already lost is not an error.

    The drain is bounded: nats-py waits up to 30 s for a drain (a pull request in
    flight on a slow server can hold it that long), longer than a shutdown may take.
    Past ``within_s`` the connection is closed without draining; nothing is lost, as
    every consumer acks only after its commit, so what was in hand comes back.
    """
    state = broker.config.broker_config.connection_state
    try:
        await asyncio.wait_for(broker.stop(), within_s)
    except TimeoutError:
        log.warning("nats_drain_timed_out", seconds=within_s)
        with suppress(Exception):  # closing what is already half gone may fail any way
            await state.connection.close()
        state.disconnect()
    except (nats.errors.Error, OSError):
        state.disconnect()
