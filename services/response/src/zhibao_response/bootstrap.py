"""Composition root: the only place the response service reads configuration and wires parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from fastapi import FastAPI
from faststream.nats import NatsBroker
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_response.config_files import WatchedPlaybook
from zhibao_response.http_api import ResponseApi, build_router, busy
from zhibao_response.levels import LevelDesk
from zhibao_response.metrics import DETAILS_PURGED, TASKS_OVERDUE
from zhibao_response.needs import IssueNeeds, NeedConsumer, needs_consumer_spec
from zhibao_response.outbox import OutboxPublisher
from zhibao_response.point_store import PointStore
from zhibao_response.points import PointDesk
from zhibao_response.points_api import build_points_router
from zhibao_response.results import (
    ApplyResults,
    ReporterNames,
    TaskResultConsumer,
    consumer_spec,
)
from zhibao_response.sealing import Sealer
from zhibao_response.settings import ResponseSettings
from zhibao_response.store import TaskStore
from zhibao_response.task_service import TaskDesk
from zhibao_response.worker_page import WorkerPage
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
from zhibao_shared.consumer import BatchConsumer
from zhibao_shared.db import make_engine, require_migrated, run_migrations
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.observability import configure_logging, probes_router
from zhibao_shared.places import load_places
from zhibao_shared.pseudonym import Pseudonymiser, owner_only_secret, pseudonym_key
from zhibao_shared.settings import redacted
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]
KEY_FILE = "response.key"
MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT_S = 5.0


def utc_now() -> datetime:
    """The service clock (tests inject their own)."""
    return datetime.now(UTC)


#: Where the migrations live (``<package>/migrations``).
PACKAGE = "zhibao_response"


async def migrate(settings: ResponseSettings) -> None:
    """Alembic upgrade heads (every branch to its latest revision)."""
    await run_migrations(settings.database_url(), PACKAGE)


def details_key(settings: ResponseSettings) -> str:
    """The key sealing personal details: configured, or generated once (owner-only)."""
    if settings.response_key is not None:
        return settings.response_key.get_secret_value()
    return owner_only_secret(settings.data_dir / KEY_FILE)


@dataclass
class Response:
    """The wired response service."""

    settings: ResponseSettings
    engine: AsyncEngine
    broker: NatsBroker
    store: TaskStore
    playbook: WatchedPlaybook
    tokens: TokenStore
    outbox: OutboxPublisher
    results: ApplyResults
    needs: IssueNeeds
    audit: AuditTrail
    consumer: BatchConsumer | None = None
    needs_consumer: BatchConsumer | None = None
    #: The consumers' loops: asked to stop, each finishes its batch in hand.
    draining: list[asyncio.Task[None]] = field(default_factory=list)
    #: Loops that run until cancelled.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def publish(self, subject: str, body: bytes, msg_id: str) -> None:
        """Store one task message in the tasks stream (returns once it is stored)."""
        js = self.broker.config.broker_config.connection_state.stream
        await js.publish(subject, body, timeout=PUBLISH_TIMEOUT_S, headers={MSG_ID: msg_id})

    async def connect(self) -> None:
        """Connect to NATS, declare the tasks stream, then publish the outbox and check."""
        await self.broker.start()
        js = self.broker.config.broker_config.connection_state.stream
        await declare_stream(js, tasks_stream_config(self.settings))
        await declare_stream(js, events_stream_config(self.settings))
        await declare_stream(js, audit_stream_config(self.settings))
        linger = self.settings.consumer_linger_s
        spec = consumer_spec(linger_s=linger)
        consumer = TaskResultConsumer(js, spec, self.results, self.settings)
        await consumer.start()
        self.consumer = consumer
        needs = NeedConsumer(js, needs_consumer_spec(linger_s=linger), self.needs, self.settings)
        await needs.start()
        self.needs_consumer = needs
        self.draining += [
            asyncio.create_task(consumer.run()),
            asyncio.create_task(needs.run()),
        ]
        self.tasks += [
            asyncio.create_task(self.outbox.run()),
            asyncio.create_task(self._checks()),
        ]
        log.info("response_connected", nats=redacted(self.settings.nats_url))

    async def check_once(self) -> None:
        """Announce overdue tasks; delete the personal details that have expired."""
        overdue = 0
        while announced := await self.store.mark_overdue():
            overdue += announced
        TASKS_OVERDUE.inc(overdue)
        after = timedelta(days=self.settings.response_purge_after_days)
        DETAILS_PURGED.inc(await self.store.purge(after))
        if overdue:
            self.outbox.wake()

    async def _checks(self) -> None:
        """Look for a new playbook every ``response_reload_s``, and for overdue tasks and
        expired details every ``response_check_interval_s`` (at start, then that often)."""
        interval = self.settings.response_check_interval_s
        checked: float | None = None
        while True:
            self.playbook.reload_if_changed()
            if checked is None or time.monotonic() - checked >= interval:
                checked = time.monotonic()
                try:
                    await self.check_once()
                except Exception as exc:
                    log.warning("periodic_check_failed", error=type(exc).__name__)
            await asyncio.sleep(min(interval, self.settings.response_reload_s))

    async def readiness(self) -> dict[str, bool]:
        """Ready when NATS is connected (task messages can go out), results and needs read."""
        return {
            "nats": bus_connected(self.broker),
            "results": self.consumer is not None,
            "needs": self.needs_consumer is not None,
        }

    async def close(self, auditing: asyncio.Task[None] | None = None) -> None:
        """Stop the loops (the audit trail's last: it flushes what it holds), publish what
        is pending if the bus is there, disconnect."""
        for consumer in (self.consumer, self.needs_consumer):
            if consumer is not None:
                await consumer.stop()
        await drain(self.draining, self.settings.shutdown_grace_s)
        await cancel_and_wait(self.tasks)
        await cancel_and_wait([auditing])
        if bus_connected(self.broker):
            with suppress(Exception):
                await asyncio.wait_for(self.outbox.flush(), self.settings.shutdown_grace_s)
        await stop_broker(self.broker)
        await self.engine.dispose()
        self.tokens.close()


def create_app(settings: ResponseSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The response ASGI app; connects to NATS in the background on startup."""
    settings = settings or ResponseSettings()
    configure_logging(settings, service="response")
    engine = make_engine(settings.database_url())
    store = TaskStore(engine, clock, settings.visit_required_kinds())
    registry = load_registry(settings.registry_path)
    places = load_places(settings.places_path)
    playbook = WatchedPlaybook(settings.response_playbook_path)
    broker = make_broker(settings, name="response")
    tokens = TokenStore.configured(settings)
    sealer = Sealer(details_key(settings))
    person_key = pseudonym_key(settings.pseudonym_key, settings.data_dir)
    outbox = OutboxPublisher(store, lambda s, b, i: service.publish(s, b, i))
    names = ReporterNames(tokens)
    service = Response(
        settings=settings,
        engine=engine,
        broker=broker,
        store=store,
        playbook=playbook,
        tokens=tokens,
        outbox=outbox,
        results=ApplyResults(store, NoteSealer(person_key), sealer, names, outbox.wake),
        needs=IssueNeeds(store, settings.need_limits(), names, outbox.wake),
        audit=AuditTrail(broker, PUBLISH_TIMEOUT_S, "response"),
    )
    desk = TaskDesk(sealer, Pseudonymiser(person_key))
    api = ResponseApi(
        store=store,
        desk=desk,
        levels=LevelDesk(store, registry, lambda: playbook.current, clock, places),
        playbook=playbook,
        registry=registry,
        clock=clock,
        max_tasks=settings.response_max_tasks,
        max_body_bytes=settings.response_max_body_bytes,
        announce=service.outbox.announced,
        audit=service.audit,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await require_migrated(settings.database_url(), PACKAGE, "response")
        auditing = asyncio.create_task(service.audit.run())
        try:
            async with connecting_in_background(service.connect):
                yield
        finally:
            await service.close(auditing)

    app = FastAPI(
        title="Zhibao response",
        version="0.1.0",
        lifespan=lifespan,
        description="Tasks pushed down to communities, and graded response levels.",
    )
    app.state.response = service
    app.include_router(build_router(api, TokenAuth(service.tokens)))
    app.include_router(
        WorkerPage(TokenAuth(service.tokens), registry, settings.intake_url).router()
    )
    point_store = PointStore(engine, store)
    app.include_router(
        build_points_router(
            PointDesk(point_store, registry, clock),
            point_store,
            registry,
            TokenAuth(service.tokens),
            clock,
            service.outbox.announced,
            service.audit,
            places,
        )
    )
    app.add_exception_handler(OperationalError, busy)
    app.add_exception_handler(InterfaceError, busy)
    app.include_router(probes_router(service.readiness))
    return app
