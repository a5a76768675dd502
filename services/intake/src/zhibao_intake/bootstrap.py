"""Composition root: the only place intake reads configuration and wires parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import nats.errors
import nats.js.errors
import structlog
from fastapi import FastAPI
from faststream.nats import NatsBroker

from zhibao_intake.asyncapi_route import asyncapi_router
from zhibao_intake.audit import AuditTrail
from zhibao_intake.domain.pseudonym import Pseudonymiser
from zhibao_intake.domain.rate_limit import RateLimiter
from zhibao_intake.domain.recently_stored import RecentlyStored
from zhibao_intake.domain.storage_budget import TokenBudgets
from zhibao_intake.fastpath import IntakeApp
from zhibao_intake.gateway import Gateway, Limits
from zhibao_intake.http_api import add_event_schemas, build_router
from zhibao_intake.nats_api import build_nats_router
from zhibao_intake.publisher import JetStreamPublisher
from zhibao_intake.settings import IntakeSettings
from zhibao_intake.submission import SubmissionService, TaskResults
from zhibao_intake.task_projection import TaskProjection
from zhibao_shared.background import cancel_and_wait
from zhibao_shared.broker import (
    audit_stream_config,
    bus_connected,
    dead_letter_stream_config,
    declare_stream,
    events_stream_config,
    make_broker,
    retry_forever,
    stop_broker,
    stop_subscribers,
    tasks_stream_config,
)
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.observability import configure_logging, probes_router
from zhibao_shared.places import load_places
from zhibao_shared.pseudonym import pseudonym_key as shared_pseudonym_key
from zhibao_shared.settings import redacted
from zhibao_shared.stream_usage import watch_streams
from zhibao_shared.subjects import AUDIT_STREAM, DEAD_LETTER_STREAM, EVENTS_STREAM, TASKS_STREAM
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)

#: Seconds between readings of the streams' fill (zhibao_stream_* gauges).
USAGE_POLL_S = 15.0
#: The streams whose fill intake reports (``zhibao_stream_*``) for ``ZhibaoStreamFilling``.
WATCHED_STREAMS = (EVENTS_STREAM, AUDIT_STREAM, DEAD_LETTER_STREAM, TASKS_STREAM)


def pseudonym_key(settings: IntakeSettings) -> bytes:
    """The configured key, or one generated once into the data directory (mode 0600)."""
    return shared_pseudonym_key(settings.pseudonym_key, settings.data_dir)


@dataclass
class Intake:
    """The wired intake service."""

    settings: IntakeSettings
    broker: NatsBroker
    tokens: TokenStore
    gateway: Gateway
    audit: AuditTrail
    projection: TaskProjection = field(default_factory=TaskProjection)
    streams_ready: asyncio.Event = field(default_factory=asyncio.Event)
    watching: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connect to NATS and declare the streams (retried until it works)."""
        await self.broker.start()
        js = self.broker.config.broker_config.connection_state.stream
        await declare_stream(js, events_stream_config(self.settings))
        await declare_stream(js, dead_letter_stream_config(self.settings))
        await declare_stream(js, audit_stream_config(self.settings))
        await declare_stream(js, tasks_stream_config(self.settings))
        await self.projection.start(js)
        self.streams_ready.set()
        self.watching = asyncio.create_task(watch_streams(js, WATCHED_STREAMS, USAGE_POLL_S))
        log.info("intake_connected", nats=redacted(self.settings.nats_url))

    async def readiness(self) -> dict[str, bool]:
        """Ready when NATS is connected, the events stream exists and the tasks stream (as
        it was at start) has been read. The events stream is asked for at each call: one an
        operator deleted stores nothing, and intake would answer every event 503."""
        connected = bus_connected(self.broker)
        return {
            "nats": connected,
            "stream": connected and self.streams_ready.is_set() and await self._events_stream(),
            "tasks": self.projection.ready,
        }

    async def _events_stream(self) -> bool:
        """True when the events stream exists on the server."""
        js = self.broker.config.broker_config.connection_state.stream
        try:
            await js.stream_info(EVENTS_STREAM)
        except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
            return False
        return True


def build(settings: IntakeSettings) -> Intake:
    """Wire intake from settings."""
    registry = load_registry(settings.registry_path)
    broker = make_broker(settings, name="intake")
    tokens = TokenStore.configured(settings)
    publisher = JetStreamPublisher(
        broker,
        settings.publish_timeout_s,
        settings.intake_bundle_events,
        RecentlyStored(settings.intake_recent_identities),
    )
    key = pseudonym_key(settings)
    projection = TaskProjection()
    results = TaskResults(projection, NoteSealer(key), settings.intake_task_catch_up_s)
    places = load_places(settings.places_path)
    zone = ZoneInfo(settings.timezone)
    service = SubmissionService(registry, Pseudonymiser(key), publisher, zone, results, places)
    limiter = RateLimiter(
        settings.rate_limit_events_per_s, settings.rate_limit_burst, clock=time.monotonic
    )
    budgets = TokenBudgets(
        settings.intake_daily_bytes_per_community,
        min(settings.events_max_bytes, settings.audit_max_bytes),
        lambda scope: (unit.code for unit in registry.communities_under(scope)),
        clock=time.monotonic,
    )
    limits = Limits(settings.max_body_bytes, settings.max_batch_items, settings.retry_after_s)
    audit = AuditTrail(
        broker, settings.publish_timeout_s, refusal_window_s=settings.audit_refusal_window_s
    )
    gateway = Gateway(tokens, service, limiter, budgets, audit, limits)
    broker.include_router(build_nats_router(gateway))
    return Intake(settings, broker, tokens, gateway, audit, projection)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """The intake ASGI app; connects to NATS in the background on startup."""
    settings = settings or IntakeSettings()
    configure_logging(settings, service="intake")
    intake = build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        auditing = asyncio.create_task(intake.audit.run())
        connecting = asyncio.create_task(
            retry_forever(
                intake.connect,
                on_failure=lambda exc: log.warning("nats_connect_failed", error=str(exc)),
            )
        )
        try:
            yield
        finally:
            await cancel_and_wait([connecting])  # it may start intake.watching until then
            await stop_subscribers(intake.broker)  # NATS submissions end before the last flush
            await cancel_and_wait([intake.watching])
            await cancel_and_wait([auditing])
            await intake.projection.stop()
            await stop_broker(intake.broker)
            intake.tokens.close()
            log.info("intake_stopped")

    app = IntakeApp(
        title="Zhibao intake",
        description="Community reports in, validated and de-identified, onto the bus.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.intake = intake
    app.include_router(build_router(intake.gateway))
    add_event_schemas(app)
    app.include_router(probes_router(intake.readiness))
    app.include_router(asyncapi_router())
    if settings.intake_fast_path:
        app.fast_gateway = intake.gateway
    return app
