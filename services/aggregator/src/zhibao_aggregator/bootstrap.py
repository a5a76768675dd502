"""Composition root: the only place the aggregator reads configuration and wires parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

import nats
import nats.js.errors
import structlog
from fastapi import APIRouter, FastAPI
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from prometheus_client import start_http_server
from sqlalchemy import delete, func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator import task_consumer
from zhibao_aggregator.audit_api import build_audit_router
from zhibao_aggregator.audit_feed import AuditFeed
from zhibao_aggregator.care_api import build_care_router
from zhibao_aggregator.changes import Changed, ignore_changes
from zhibao_aggregator.dashboard import Dashboard
from zhibao_aggregator.dashboard.overview_api import build_overview_router
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.public import ReleaseRules
from zhibao_aggregator.domain.quality import Weights
from zhibao_aggregator.domain.risk import NationalRule2020, RiskRule, ZoningRule
from zhibao_aggregator.domain.templates import ReportTemplate
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.http_api import (
    add_error_handlers,
    build_public_router,
    build_quality_router,
    build_router,
)
from zhibao_aggregator.migrate import PACKAGE, migrate
from zhibao_aggregator.place_reader import PlaceReader
from zhibao_aggregator.places_api import build_places_router
from zhibao_aggregator.public_page import build_public_page
from zhibao_aggregator.public_summary import PublicSummaries
from zhibao_aggregator.publisher import RollupPublisher
from zhibao_aggregator.quality_reader import AuditRejections, QualityReader
from zhibao_aggregator.read_fastpath import AggregatorApp, FastRollup
from zhibao_aggregator.reader import RollupReader
from zhibao_aggregator.registered_places import grid_workload
from zhibao_aggregator.response_feed import Message, response_feed
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.replay import (
    read_indexes_deferred,
    rebuild_finished,
    rebuild_started,
    replay_engine,
    unfinished_rebuild,
)
from zhibao_aggregator.storage.tables import applied_events, metadata, public_releases
from zhibao_aggregator.storage.task_tables import task_facts
from zhibao_aggregator.storage.templates import report_templates
from zhibao_aggregator.storage.writer import HeldCounters, Rules
from zhibao_aggregator.task_consumer import ApplyTaskMessages
from zhibao_aggregator.template_files import load_templates, sample_dir
from zhibao_aggregator.templates_api import build_templates_router, build_unit_templates_router
from zhibao_aggregator.templates_catalogue import TemplateCatalogue
from zhibao_shared.audit import AuditTrail
from zhibao_shared.background import cancel_and_wait, drain
from zhibao_shared.broker import (
    audit_stream_config,
    bus_connected,
    declare_stream,
    events_stream_config,
    make_broker,
    retry_forever,
    stop_broker,
    tasks_stream_config,
)
from zhibao_shared.bus_access import audit_durable, levels_durable
from zhibao_shared.consumer import BatchConsumer, ConsumerSpec
from zhibao_shared.db import make_engine, require_migrated
from zhibao_shared.helper_process import Helper, all_or_first_failure, start_helper
from zhibao_shared.hierarchy import Registry, load_registry
from zhibao_shared.http_auth import TokenAuth
from zhibao_shared.observability import configure_logging, probes_router
from zhibao_shared.places import load_places
from zhibao_shared.response_events import response_filters
from zhibao_shared.runtime import tune_gc
from zhibao_shared.settings import nats_servers, redacted
from zhibao_shared.stream_feed import FeedSpec, StreamFeed
from zhibao_shared.subjects import (
    AUDIT_ALL,
    AUDIT_STREAM,
    EVENTS_ALL,
    EVENTS_STREAM,
    TASKS_STREAM,
    district_events,
)
from zhibao_shared.tokens import TokenStore

log = structlog.get_logger(__name__)

LAG_POLL_S = 5.0
#: Seconds to wait for the audit stream to store a batch of records.
AUDIT_PUBLISH_TIMEOUT_S = 5.0
#: Seconds between attempts to start the task consumer while the tasks stream is missing.
TASKS_RETRY_S = 5.0


def load_settings() -> AggregatorSettings:
    """Settings from the ``ZHIBAO_*`` environment."""
    return AggregatorSettings()


def consumer_spec(settings: AggregatorSettings) -> ConsumerSpec:
    """The aggregator's durable consumer, limited to its districts when configured."""
    filters = tuple(district_events(d) for d in settings.aggregator_districts) or (EVENTS_ALL,)
    return ConsumerSpec(
        service="aggregator",
        durable=settings.aggregator_durable,
        filter_subjects=filters,
        batch_size=settings.aggregator_batch_size,
        linger_s=settings.consumer_linger_s,
        max_deliver=settings.aggregator_max_deliver,
        ack_wait_s=settings.aggregator_ack_wait_s,
        transient=(OSError, TimeoutError, OperationalError, InterfaceError),
    )


def rules(settings: AggregatorSettings) -> Rules:
    """The domain parameters from settings."""
    return Rules(
        Calendar.named(settings.timezone),
        settings.fever_threshold_c,
        settings.daily_report_deadline,
        settings.case_report_limit,
    )


def quality_reader(settings: AggregatorSettings, engine: AsyncEngine) -> QualityReader:
    """The scorecard's read side; rejections come from the audit trail's read model."""
    return QualityReader(
        engine,
        load_registry(settings.registry_path),
        Calendar.named(settings.timezone),
        settings.daily_report_deadline,
        settings.case_report_limit,
        Weights(**settings.quality_weights()),
        AuditRejections(engine),
    )


def levels_feed(
    settings: AggregatorSettings,
    js: JetStreamContext,
    engine: AsyncEngine,
    on_committed: Changed = ignore_changes,
) -> StreamFeed[Message]:
    """The consumer of declared levels and epidemic points (``<durable>-levels``)."""
    spec = FeedSpec(
        service="aggregator",
        stream=TASKS_STREAM,
        durable=levels_durable(settings.aggregator_durable),
        filter_subjects=response_filters(settings.aggregator_districts),
        # Levels and points are rare: an idle consumer asks twice a second.
        fetch_timeout_s=0.5,
        max_deliver=settings.aggregator_max_deliver,
        ack_wait_s=settings.aggregator_ack_wait_s,
    )
    return response_feed(js, spec, engine, Calendar.named(settings.timezone), on_committed)


def audit_feed(
    settings: AggregatorSettings, js: JetStreamContext, engine: AsyncEngine, tokens: TokenStore
) -> AuditFeed:
    """The audit trail's projection (``<durable>-audit``, and the token store's actions)."""
    spec = FeedSpec(
        service="aggregator",
        stream=AUDIT_STREAM,
        durable=audit_durable(settings.aggregator_durable),
        filter_subjects=(AUDIT_ALL,),
        max_deliver=settings.aggregator_max_deliver,
        ack_wait_s=settings.aggregator_ack_wait_s,
    )
    return AuditFeed(js, spec, engine, Calendar.named(settings.timezone), tokens)


def risk_rule(settings: AggregatorSettings) -> ZoningRule:
    """The risk zoning rule from settings."""
    if settings.risk_rule == "new_cases":
        return RiskRule(settings.risk_window_days, settings.risk_medium_at, settings.risk_high_at)
    return NationalRule2020(
        settings.risk_window_days, settings.risk_cumulative_above, settings.risk_cluster_min_cases
    )


def reader(settings: AggregatorSettings, engine: AsyncEngine) -> RollupReader:
    """The read side (with the places registry and the grid workload it gives)."""
    registry = load_registry(settings.registry_path)
    places = load_places(settings.places_path)
    return RollupReader(
        engine,
        registry,
        Calendar.named(settings.timezone),
        risk_rule(settings),
        settings.daily_report_deadline,
        settings.point_lift_after_days,
        places=places,
        workload=grid_workload(places, registry),
    )


def template_files(settings: AggregatorSettings, registry: Registry) -> dict[str, ReportTemplate]:
    """The report template files (:class:`TemplateFileError` names every bad file and field);
    the sample's templates with the sample registry unless a directory is configured."""
    directory = settings.aggregator_templates_dir
    if directory is None and settings.registry_path is None:
        directory = sample_dir()
    return {} if directory is None else load_templates(directory, registry)


def public_summaries(settings: AggregatorSettings, read_side: RollupReader) -> PublicSummaries:
    """The daily public releases."""
    return PublicSummaries(
        read_side,
        ReleaseRules(settings.small_cell_threshold, risk_rule(settings)),
        settings.public_min_level,
        settings.public_release_after,
    )


@dataclass
class Aggregator:
    """The wired, running aggregator: consumer, rollup publisher and read side."""

    settings: AggregatorSettings
    engine: AsyncEngine
    broker: NatsBroker
    reader: RollupReader
    publisher: RollupPublisher
    tokens: TokenStore
    audit: AuditTrail
    consumer: BatchConsumer | None = None
    feed: StreamFeed[Message] | None = None
    audit_feed: AuditFeed | None = None
    #: The consumers' and feeds' loops: asked to stop, each finishes its batch in hand.
    draining: list[asyncio.Task[None]] = field(default_factory=list)
    #: Loops that run until cancelled.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    task_subscriber: Any = None

    async def connect(self) -> None:
        """Connect to NATS, declare the stream and the durable consumer, start consuming."""
        await self.broker.start()
        js = self.broker.config.broker_config.connection_state.stream
        await declare_stream(js, events_stream_config(self.settings))
        handler = ApplyBatch(self.engine, rules(self.settings), self.publisher.mark)
        consumer = BatchConsumer(js, consumer_spec(self.settings), handler, self.settings)
        await consumer.start()
        self.consumer = consumer
        feed = levels_feed(self.settings, js, self.engine, self.publisher.mark)
        await declare_stream(js, tasks_stream_config(self.settings))
        await feed.start()
        self.feed = feed
        trail = audit_feed(self.settings, js, self.engine, self.tokens)
        await declare_stream(js, audit_stream_config(self.settings))
        await trail.start()
        self.audit_feed = trail
        self.draining += [
            asyncio.create_task(consumer.run()),
            asyncio.create_task(feed.run()),
            asyncio.create_task(trail.run()),
        ]
        self.tasks += [
            asyncio.create_task(trail.copy_tokens_forever()),
            asyncio.create_task(self.publisher.run()),
            asyncio.create_task(self._poll_lag()),
            asyncio.create_task(
                retry_forever(
                    lambda: self._consume_task_messages(js),
                    on_failure=lambda exc: log.info("task_consumer_waiting", error=str(exc)),
                    delay_s=TASKS_RETRY_S,
                )
            ),
        ]
        log.info("aggregator_connected", nats=redacted(self.settings.nats_url))

    async def _consume_task_messages(self, js: JetStreamContext) -> None:
        """The task messages' consumer (its own durable; the events' hot path is untouched).

        Started beside the events, retried until the tasks stream exists: a deployment
        without the response service (or room for its stream) still counts its events.
        """
        await declare_stream(js, tasks_stream_config(self.settings))
        await js.stream_info(TASKS_STREAM)  # raises while there is none
        if self.task_subscriber is None:
            apply = ApplyTaskMessages(
                self.engine, Calendar.named(self.settings.timezone), self.publisher.mark
            )
            self.task_subscriber = task_consumer.subscribe(self.broker, self.settings, apply)
        await task_consumer.start(self.task_subscriber)

    async def _poll_lag(self) -> None:
        while True:
            with suppress(Exception):
                if self.consumer is not None:
                    await self.consumer.pending()
            await asyncio.sleep(LAG_POLL_S)

    async def readiness(self) -> dict[str, bool]:
        """Ready when NATS is connected and the consumers run on streams that exist."""
        connected = bus_connected(self.broker)
        consumer = self.consumer
        present = connected and consumer is not None and await consumer.present()
        reading_tasks = present and await task_consumer.reading(
            self.broker.config.broker_config.connection_state.stream, self.settings
        )
        return {"nats": connected, "consumer": present, "tasks_consumer": reading_tasks}

    async def close(self, auditing: asyncio.Task[None] | None = None) -> None:
        """Drain: finish the batch in hand (ack it), stop publishing (the audit trail
        flushes what it holds), disconnect."""
        if self.consumer is not None:
            await self.consumer.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self.audit_feed is not None:
            await self.audit_feed.stop()
        await drain(self.draining, self.settings.shutdown_grace_s)
        log.info("aggregator_consumer_drained")
        await cancel_and_wait(self.tasks)
        await cancel_and_wait([auditing])
        await stop_broker(self.broker)
        log.info("aggregator_disconnected")
        await self.engine.dispose()
        self.reader.connections.dispose()
        if self.consumer is not None and isinstance(self.consumer.handler, ApplyBatch):
            self.consumer.handler.close()
        log.info("aggregator_stopped")


def build(settings: AggregatorSettings) -> Aggregator:
    """Wire the aggregator from settings."""
    engine = make_engine(settings.database_url())
    broker = make_broker(settings, name="aggregator")
    read_side = reader(settings, engine)

    async def publish(subject: str, body: bytes) -> None:
        # the client's own publish: a flush sends every dirty unit, and FastStream's
        # publish path (middlewares, headers) costs several times the send itself
        await broker.connection.publish(subject, body)

    publisher = RollupPublisher(
        read_side,
        publish,
        settings.aggregator_publish_interval_s,
        max_share=settings.aggregator_publish_max_share,
    )
    tokens = TokenStore.configured(settings)
    audit = AuditTrail(broker, AUDIT_PUBLISH_TIMEOUT_S, "aggregator")
    return Aggregator(settings, engine, broker, read_side, publisher, tokens, audit)


def operations_router(aggregator: Aggregator) -> APIRouter:
    """Probes, and ``/metrics`` unless it has a port of its own."""
    router = probes_router(aggregator.readiness)
    if aggregator.settings.aggregator_metrics_port is not None:
        router.routes[:] = [r for r in router.routes if getattr(r, "path", "") != "/metrics"]
    return router


@contextmanager
def metrics_server(settings: AggregatorSettings) -> Iterator[None]:
    """``/metrics`` on ``ZHIBAO_AGGREGATOR_METRICS_PORT`` while the app runs (if set)."""
    if settings.aggregator_metrics_port is None:
        yield
        return
    server, thread = start_http_server(settings.aggregator_metrics_port, addr=settings.host)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def create_app(settings: AggregatorSettings | None = None) -> FastAPI:
    """The aggregator ASGI app; consumes in the background once NATS answers."""
    settings = settings or load_settings()
    configure_logging(settings, service="aggregator")
    aggregator = build(settings)
    auth = TokenAuth(aggregator.tokens)
    dashboard = Dashboard.create(
        nats_url=settings.dashboard_nats_url or settings.nats_url,
        auth=auth,
        registry=aggregator.reader.registry,
        alerts_url=settings.alerts_url,
        heartbeat_s=settings.dashboard_heartbeat_s,
        token_recheck_s=settings.dashboard_token_recheck_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await require_migrated(settings.database_url(), PACKAGE, "aggregator")
        if (started := await unfinished_rebuild(settings.database_url())) is not None:
            raise RuntimeError(
                f"the rebuild started at {started} did not finish (its counters lag the "
                "events it applied): run `zhibao aggregator rebuild --force`"
            )
        auditing = asyncio.create_task(aggregator.audit.run())
        connecting = asyncio.create_task(
            retry_forever(
                aggregator.connect,
                on_failure=lambda exc: log.warning("nats_connect_failed", error=str(exc)),
            )
        )
        try:
            with metrics_server(settings):
                yield
        finally:
            await cancel_and_wait([connecting])
            await dashboard.close()
            await aggregator.close(auditing)

    app = AggregatorApp(
        title="Zhibao aggregator",
        description="Exact community, street, district and city rollups from the event stream.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.aggregator = aggregator
    app.state.dashboard = dashboard
    add_error_handlers(app)
    app.include_router(build_router(aggregator.reader, auth))
    app.fast_rollup = FastRollup(aggregator.reader, auth)
    app.include_router(build_care_router(aggregator.reader, auth))
    app.include_router(build_overview_router(aggregator.reader, auth))
    app.include_router(build_places_router(PlaceReader(aggregator.reader), auth))
    app.include_router(build_quality_router(quality_reader(settings, aggregator.engine), auth))
    catalogue = TemplateCatalogue(
        aggregator.engine, template_files(settings, aggregator.reader.registry)
    )
    app.include_router(build_templates_router(catalogue, aggregator.reader, auth, aggregator.audit))
    app.include_router(build_unit_templates_router(catalogue, aggregator.reader, auth))
    calendar = Calendar.named(settings.timezone)
    app.include_router(build_audit_router(aggregator.engine, auth, aggregator.audit, calendar))
    summaries = public_summaries(settings, aggregator.reader)
    app.include_router(build_public_router(summaries))
    app.include_router(build_public_page(summaries, settings.public_home))
    app.include_router(dashboard.router())
    app.include_router(operations_router(aggregator))
    return app


class NotEmpty(RuntimeError):
    """Rebuild refuses a database that already holds applied events."""


async def _empty_database(
    engine: AsyncEngine, *, force: bool, before_wipe: Callable[[], Awaitable[None]]
) -> None:
    """Check the database may be wiped, run ``before_wipe``, then wipe (one transaction)."""
    async with engine.begin() as conn:
        count = await conn.scalar(select(func.count()).select_from(applied_events))
        count = count or await conn.scalar(select(func.count()).select_from(task_facts))
        if count and not force:
            raise NotEmpty(f"the database holds {count} applied messages; use --force to wipe it")
        await before_wipe()
        for table in reversed(metadata.sorted_tables):
            # released figures stay as published; templates are not derived from the stream
            if table not in (public_releases, report_templates):
                await conn.execute(delete(table))
        await rebuild_started(conn)


async def rebuild(settings: AggregatorSettings, *, force: bool = False) -> int:
    """Replay the streams from their start into an empty database; returns events applied.

    The events and the task messages are replayed (the task rollups too). The
    durable consumers are recreated at their stream's start, so the service
    continues from where the rebuild ended. Run it while the service is stopped.
    Declared levels and epidemic points are replayed from the tasks stream the same
    way (its own durable consumer, recreated), as far back as that stream keeps them.
    """
    url = settings.database_url()
    await migrate(url)
    engine = replay_engine(url)
    client = await nats.connect(nats_servers(settings.nats_url))
    try:
        js = client.jetstream()
        await declare_stream(js, events_stream_config(settings))
        await declare_stream(js, tasks_stream_config(settings))

        async def drop_consumers() -> None:
            await _drop_consumer(js, settings.aggregator_durable)
            await task_consumer.drop_consumer(js, settings)
            await _drop_consumer(js, levels_durable(settings.aggregator_durable), TASKS_STREAM)

        await _empty_database(engine, force=force, before_wipe=drop_consumers)
        async with read_indexes_deferred(engine):
            replayed = await _replay_events(settings, js, engine)
            calendar = Calendar.named(settings.timezone)
            apply_tasks = ApplyTaskMessages(engine, calendar, ignore_changes)
            await task_consumer.replay(js, settings, apply_tasks)
            feed = levels_feed(settings, js, engine)
            await feed.start()
            await feed.run_until_caught_up()
        await rebuild_finished(engine)
        return replayed
    finally:
        await client.close()
        await engine.dispose()


async def _replay_events(
    settings: AggregatorSettings, js: JetStreamContext, engine: AsyncEngine
) -> int:
    """Replay the events stream in ``aggregator_rebuild_processes`` processes: this one
    and helpers, all fetching from the one durable consumer (each message goes to one of
    them) and applying in turn (SQLite: one writer at a time; the decoding and counting
    of one run beside the other's transaction). Returns the events they applied. The
    first of them to fail ends the others (a helper that cannot start fails the rebuild
    at once, not after this process replayed the whole stream alone)."""
    helpers: list[Helper[int]] = []
    try:
        for _ in range(settings.aggregator_rebuild_processes - 1):
            helpers.append(start_helper(_replay_share_apart, settings))
        shares = [replay_share(settings, js, engine), *(h.result() for h in helpers)]
        return sum(await all_or_first_failure(shares))
    finally:
        for helper in helpers:
            helper.stop()


async def replay_share(
    settings: AggregatorSettings, js: JetStreamContext, engine: AsyncEngine
) -> int:
    """Apply what this process fetches until nothing is pending, then write the counter
    changes it held; returns the events it applied."""
    held = HeldCounters(settings.aggregator_rebuild_held_keys)
    handler = ApplyBatch(engine, rules(settings), ignore_changes, held)
    spec = replace(consumer_spec(settings), batch_size=settings.aggregator_rebuild_batch_size)
    consumer = BatchConsumer(js, spec, handler, settings)
    started = time.perf_counter()
    try:
        await consumer.start()
        await consumer.run_until_caught_up()
        replayed = time.perf_counter()
        await handler.write_held()
    finally:
        await consumer.close()
        handler.close()
    log.info(
        "rebuild_share_done",
        events=consumer.stats.events,
        replay_s=round(replayed - started, 1),
        write_s=round(time.perf_counter() - replayed, 1),
    )
    return consumer.stats.events


def _replay_share_apart(settings: AggregatorSettings) -> int:
    """A helper process's share of a rebuild (:func:`_replay_events`)."""
    configure_logging(settings, service="aggregator")
    tune_gc()
    return asyncio.run(_replay_share_connected(settings))


async def _replay_share_connected(settings: AggregatorSettings) -> int:
    engine = replay_engine(settings.database_url())
    client = await nats.connect(nats_servers(settings.nats_url))
    try:
        return await replay_share(settings, client.jetstream(), engine)
    finally:
        await client.close()
        await engine.dispose()


class NeedsOperator(RuntimeError):
    """The bus refused an operator's action to this service's user."""


async def _drop_consumer(js: JetStreamContext, durable: str, stream: str = EVENTS_STREAM) -> None:
    """Delete a durable consumer; only the bus operator may (the rebuild is theirs)."""
    try:
        await js.delete_consumer(stream, durable)
    except nats.js.errors.NotFoundError:
        return
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise NeedsOperator(
            "the bus refused to delete the durable consumer: a rebuild needs the operator's "
            "credentials, e.g. ZHIBAO_NATS_URL=$(zhibao bus-url) zhibao aggregator rebuild"
        ) from exc
