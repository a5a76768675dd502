"""Composition root: the only place the alerts service reads configuration and wires parts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_alerts import care_feed, metrics
from zhibao_alerts import task_consumer as task_feed
from zhibao_alerts.busy import DatabaseBusy, busy_response, short_busy_timeout
from zhibao_alerts.config_files import Watched
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_alerts.domain.redaction import mask_text
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.http_api import build_router
from zhibao_alerts.keypersons import KeyPersons, KeyPersonWatch
from zhibao_alerts.raising import Routing
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.task_handler import ApplyTaskMessages
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.audit import AuditTrail
from zhibao_shared.background import cancel_and_wait, drain
from zhibao_shared.broker import (
    audit_stream_config,
    bus_connected,
    connecting_in_background,
    declare_stream,
    events_stream_config,
    make_broker,
    stop_broker,
    tasks_stream_config,
)
from zhibao_shared.bus_access import care_durable, tasks_durable
from zhibao_shared.consumer import BatchConsumer, ConsumerSpec
from zhibao_shared.db import is_sqlite, make_engine, require_migrated, run_migrations
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.observability import configure_logging, probes_router
from zhibao_shared.places import load_places
from zhibao_shared.settings import redacted
from zhibao_shared.stream_feed import FeedSpec, StreamFeed
from zhibao_shared.subjects import EVENTS_ALL, TASKS_STREAM, district_events
from zhibao_shared.task_events import TaskMessage
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)

WATCHDOG_INTERVAL_S = 5.0
#: Seconds to wait for the audit stream to store a batch of records.
PUBLISH_TIMEOUT_S = 5.0
#: The least a stop leaves the dispatcher's sends under way (a webhook's timeout), even
#: when the consumers' drain took the whole shutdown grace.
PAGING_GRACE_MIN_S = 5.0
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The service clock (tests inject their own)."""
    return datetime.now(UTC)


#: Where the migrations live (``<package>/migrations``).
PACKAGE = "zhibao_alerts"


async def migrate(settings: AlertsSettings) -> None:
    """Alembic upgrade heads (every branch to its latest revision)."""
    await run_migrations(settings.database_url(), PACKAGE)


def consumer_spec(settings: AlertsSettings) -> ConsumerSpec:
    """The alerts service's durable consumer, limited to its districts when configured
    (partitions share one PostgreSQL database; see the README's scale-out)."""
    return ConsumerSpec(
        service="alerts",
        durable=settings.alerts_durable,
        batch_size=settings.alerts_batch_size,
        linger_s=settings.consumer_linger_s,
        ack_wait_s=settings.alerts_ack_wait_s,
        filter_subjects=tuple(district_events(d) for d in settings.alerts_districts)
        or (EVENTS_ALL,),
        # IntegrityError: another instance sharing the database inserted the same row
        # (a unit's first day, a count) first; the redelivery finds it and goes on
        transient=(OSError, TimeoutError, OperationalError, InterfaceError, IntegrityError),
    )


def task_consumer_spec(settings: AlertsSettings) -> FeedSpec:
    """The alerts service's durable consumer of task messages, partitioned like its events
    consumer (``ZHIBAO_ALERTS_DISTRICTS``)."""
    return FeedSpec(
        service="alerts",
        stream=TASKS_STREAM,
        durable=tasks_durable(settings.alerts_durable),
        filter_subjects=task_feed.task_filters(settings.alerts_districts),
        batch_size=settings.alerts_tasks_batch_size,
        fetch_timeout_s=settings.alerts_tasks_fetch_s,
        ack_wait_s=settings.alerts_ack_wait_s,
    )


def care_consumer_spec(settings: AlertsSettings) -> FeedSpec:
    """The durable consumer of tasks done and epidemic points (key persons' watch),
    partitioned like the events consumer."""
    return FeedSpec(
        service="alerts",
        stream=TASKS_STREAM,
        durable=care_durable(settings.alerts_durable),
        filter_subjects=care_feed.care_filters(settings.alerts_districts),
        batch_size=settings.alerts_tasks_batch_size,
        fetch_timeout_s=settings.alerts_tasks_fetch_s,
        ack_wait_s=settings.alerts_ack_wait_s,
    )


@dataclass
class Alerts:
    """The wired alerts service."""

    settings: AlertsSettings
    engine: AsyncEngine
    #: the API's engine: on SQLite its own pool with a short busy timeout (it retries)
    api_engine: AsyncEngine
    broker: NatsBroker
    rules: Watched[Rules]
    oncall: Watched[OnCall]
    tokens: TokenStore
    audit: AuditTrail
    clock: Clock = utc_now
    consumer: BatchConsumer | None = None
    task_consumer: StreamFeed[TaskMessage] | None = None
    care_consumer: StreamFeed[care_feed.Message] | None = None
    dispatcher: Dispatcher | None = None
    #: The consumers' loops: asked to stop, each finishes its batch in hand.
    draining: list[asyncio.Task[None]] = field(default_factory=list)
    #: The dispatcher's loop: asked to stop, it finishes the sends under way.
    paging: asyncio.Task[None] | None = None
    #: Loops that run until cancelled.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # the dispatcher's heartbeat counts from the start until its first pass: one that
        # never starts (NATS unreachable) shows as stalled, not as absent
        metrics.LAST_PASS.set(self.clock().timestamp())

    def routing(self) -> Routing:
        """Current routing (on-call reloads take effect on the next use)."""
        return Routing(
            self.oncall.current,
            load_registry(self.settings.registry_path),
            self.settings.aggregator_url,
            PageHorizon(self.settings.alerts_page_horizon_hours),
            load_places(self.settings.places_path),
        )

    async def publish(self, subject: str, body: bytes) -> None:
        """Publish an alert notification on NATS."""
        await self.broker.publish(body, subject)

    async def _start_task_consumer(self, js: JetStreamContext) -> StreamFeed[TaskMessage]:
        """The task messages' consumer, started (its stream declared if the response
        service has not made it yet)."""
        await declare_stream(js, tasks_stream_config(self.settings))
        apply = ApplyTaskMessages(
            self.engine,
            lambda: self.rules.current,
            self.routing,
            self.settings.timezone,
            self.clock,
            on_alert=self._alert_committed,
        )
        consumer = StreamFeed(js, task_consumer_spec(self.settings), task_feed.decode, apply)
        await consumer.start()
        return consumer

    def key_persons(self) -> KeyPersons:
        """Key persons' watch (ZHIBAO_ALERTS_KEYPERSON_CONTACT_HOURS)."""
        return KeyPersons(
            self.settings.alerts_keyperson_contact_hours,
            lambda: self.rules.current,
            self.routing,
            self.settings.timezone,
            self.clock,
        )

    async def _start_care(self, js: JetStreamContext, persons: KeyPersons) -> None:
        """The care consumer (tasks done, points) and the periodic no-contact check."""
        apply = care_feed.ApplyCareMessages(self.engine, persons, lambda: self.routing().places)
        consumer = StreamFeed(js, care_consumer_spec(self.settings), care_feed.decode, apply)
        await consumer.start()
        self.care_consumer = consumer
        watch = KeyPersonWatch(self.engine, persons, self._caught_up, self._alert_committed)
        self.draining.append(asyncio.create_task(consumer.run()))
        self.tasks.append(asyncio.create_task(self._every(WATCHDOG_INTERVAL_S, watch.tick)))

    async def connect(self) -> None:
        """Connect, declare the streams and consumers, start consuming and dispatching."""
        await self.broker.start()
        js = self.broker.config.broker_config.connection_state.stream
        await declare_stream(js, events_stream_config(self.settings))
        await declare_stream(js, audit_stream_config(self.settings))
        handler = ApplyEvents(
            self.engine,
            lambda: self.rules.current,
            self.routing,
            self.settings.timezone,
            self.clock,
            self.settings.fever_threshold_c,
            on_alert=self._alert_committed,
            care=(persons := self.key_persons()),
        )
        spec = consumer_spec(self.settings)
        self.consumer = BatchConsumer(js, spec, handler, self.settings)
        await self.consumer.start()
        self.task_consumer = await self._start_task_consumer(js)
        await self._start_care(js, persons)
        dispatcher = self.dispatcher = Dispatcher(
            self.engine, self.routing, self.publish, self.clock, timezone=self.settings.timezone
        )
        watchdog = Watchdog(
            self.engine,
            lambda: self.rules.current,
            self.routing,
            self.settings.timezone,
            self.clock,
            caught_up=self._caught_up,
            on_alert=self._alert_committed,
            report_deadline=self.settings.daily_report_deadline,
        )
        self.draining += [
            asyncio.create_task(self.consumer.run()),
            asyncio.create_task(self.task_consumer.run()),
        ]
        self.paging = asyncio.create_task(dispatcher.run())
        self.tasks += [
            asyncio.create_task(self._every(WATCHDOG_INTERVAL_S, watchdog.tick)),
            asyncio.create_task(self._watch_config()),
        ]
        log.info("alerts_connected", nats=redacted(self.settings.nats_url))

    def _alert_committed(self) -> None:
        """The consumer committed new alerts: deliver them now, not at the next tick."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def _caught_up(self) -> bool:
        """No more than a batch of events waits for this service (its view is current)."""
        if self.consumer is None:
            return False
        return await self.consumer.pending_events() <= self.settings.alerts_batch_size

    @staticmethod
    async def _every(interval_s: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except Exception as exc:
                log.warning("periodic_check_failed", error=mask_text(repr(exc)))
            await asyncio.sleep(interval_s)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alerts_reload_s)
            self.rules.reload_if_changed()
            if self.oncall.reload_if_changed() and self.dispatcher is not None:
                try:  # new escalation policies: every open alert's next action is recomputed
                    await self.dispatcher.reschedule()
                except Exception as exc:
                    log.warning("reschedule_failed", error=mask_text(repr(exc)))

    async def readiness(self) -> dict[str, bool]:
        """Ready when NATS is connected and the consumers run on streams that exist."""
        connected = bus_connected(self.broker)
        consumer, tasks = self.consumer, self.task_consumer
        present = connected and consumer is not None and await consumer.present()
        reading_tasks = connected and tasks is not None and await tasks.present()
        return {"nats": connected, "consumer": present, "tasks_consumer": reading_tasks}

    async def _stop_paging(self, deadline: float) -> None:
        """Stop the dispatcher and let its sends under way finish, within what is left of
        the grace until ``deadline`` (the loop's time) but at least ``PAGING_GRACE_MIN_S``."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
        left = deadline - asyncio.get_running_loop().time()
        await drain([self.paging], max(left, PAGING_GRACE_MIN_S))

    async def close(self, auditing: asyncio.Task[None] | None = None) -> None:
        """Drain: stop consuming after the batch in hand, then paging after the sends under
        way (the alerts of the last batches are paged first), both within the shutdown
        grace; stop the loops (the audit trail's last, so it flushes what it holds),
        disconnect."""
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace_s
        if self.consumer is not None:
            await self.consumer.stop()
        if self.task_consumer is not None:
            await self.task_consumer.stop()
        if self.care_consumer is not None:
            await self.care_consumer.stop()
        await drain(self.draining, self.settings.shutdown_grace_s)
        await self._stop_paging(deadline)
        await cancel_and_wait(self.tasks)
        await cancel_and_wait([auditing])
        await stop_broker(self.broker)
        await self.engine.dispose()
        await self.api_engine.dispose()
        if self.consumer is not None and isinstance(self.consumer.handler, ApplyEvents):
            self.consumer.handler.close()
        self.tokens.close()


def build(settings: AlertsSettings, clock: Clock = utc_now) -> Alerts:
    """Wire the service from settings (config files are validated here: bad ones stop it)."""
    url = settings.database_url()
    engine = make_engine(url)
    broker = make_broker(settings, name="alerts")
    return Alerts(
        settings=settings,
        engine=engine,
        api_engine=short_busy_timeout(make_engine(url)) if is_sqlite(url) else engine,
        broker=broker,
        rules=Watched(
            Rules,
            settings.alerts_rules_path,
            "rules.yaml",
            lambda rules: rules.deadline_conflict(settings.daily_report_deadline),
        ),
        oncall=Watched(OnCall, settings.alerts_oncall_path, "oncall.yaml"),
        tokens=TokenStore.configured(settings),
        audit=AuditTrail(broker, PUBLISH_TIMEOUT_S, "alerts"),
        clock=clock,
    )


def create_app(settings: AlertsSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The alerts ASGI app (tests drive ``clock``)."""
    settings = settings or AlertsSettings()
    configure_logging(settings, service="alerts")
    service = build(settings, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await require_migrated(settings.database_url(), PACKAGE, "alerts")
        auditing = asyncio.create_task(service.audit.run())
        try:
            async with connecting_in_background(service.connect):
                yield
        finally:
            await service.close(auditing)

    app = FastAPI(
        title="Zhibao alerts",
        version="0.1.0",
        lifespan=lifespan,
        description="Early warnings that reach the on-call person and escalate.",
    )
    app.state.alerts = service
    app.include_router(
        build_router(
            service.api_engine,
            TokenAuth(service.tokens),
            clock,
            service.routing,
            settings.alerts_lock_wait_s,
            settings.alerts_require_personal_tokens,
            audit=service.audit,
        )
    )
    app.add_exception_handler(DatabaseBusy, busy_response)
    app.add_exception_handler(OperationalError, busy_response)
    app.include_router(probes_router(service.readiness))
    return app
