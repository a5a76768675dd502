"""The live fan-out hub: one NATS subscription per process, many browser streams.

Rollups (``zhibao.rollups.>``, published by this service) and alert
notifications (``zhibao.alerts.>``, published by the alerts service) arrive
once per process and are offered to every connected client whose filter
accepts them:

* the token's scope (a street's token never receives the neighbouring street);
* optionally the unit the page shows: that unit's rollup and its direct
  children's, and alerts of the unit and everything below it.

Each client has a bounded queue. A client too slow to keep up is not allowed
to grow memory: its queue is emptied and replaced by one ``resync`` item, and
the page re-reads everything over HTTP. The same happens to every client
after a NATS reconnect (messages may have been missed meanwhile).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats
import structlog

from zhibao_shared.background import cancel_and_wait
from zhibao_shared.hierarchy import child_length
from zhibao_shared.settings import nats_servers

log = structlog.get_logger(__name__)

ROLLUPS = "zhibao.rollups.>"
ALERTS = "zhibao.alerts.>"

Deliver = Callable[[str, bytes], None]


@dataclass(frozen=True)
class LiveItem:
    """One thing to push to browsers: ``kind`` is rollup, alert, resync or closed."""

    kind: str
    unit: str = ""
    data: dict[str, Any] = field(default_factory=dict)


RESYNC = LiveItem("resync")
CLOSED = LiveItem("closed")


def _alert_item(alert: dict[str, Any], body: dict[str, Any]) -> LiveItem | None:
    labels = alert.get("labels") or {}
    unit = str(labels.get("unit", ""))
    if not unit.isdigit():
        return None
    notes = alert.get("annotations") or body.get("commonAnnotations") or {}
    return LiveItem(
        "alert",
        unit,
        {
            "unit": unit,
            "rule": labels.get("alertname"),
            "severity": labels.get("severity"),
            "status": alert.get("status", body.get("status")),
            "summary_zh": notes.get("summary_zh"),
            "summary_en": notes.get("summary"),
            "starts_at": alert.get("startsAt"),
        },
    )


def parse(subject: str, body: bytes) -> list[LiveItem]:
    """Items carried by one NATS message (unknown or malformed messages give none).

    A rollup message is ``{"unit", "level", "date", "figures"}``; an alert
    message is the Alertmanager v4 webhook body, of which only the labels and
    summaries are passed on (counts and codes, no personal data).
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    if not isinstance(payload, dict):
        return []
    if subject.startswith("zhibao.rollups."):
        unit = str(payload.get("unit", ""))
        if not unit.isdigit() or not isinstance(payload.get("figures"), dict):
            return []
        keep = ("unit", "level", "date", "figures")
        return [LiveItem("rollup", unit, {k: payload.get(k) for k in keep})]
    if subject.startswith("zhibao.alerts."):
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            return []
        items = (_alert_item(a, payload) for a in alerts if isinstance(a, dict))
        return [item for item in items if item is not None]
    return []


@dataclass(frozen=True)
class Watch:
    """What one client may and wants to see."""

    scopes: tuple[str, ...]
    unit: str | None = None

    def accepts(self, item: LiveItem) -> bool:
        """True when the item is within the token's scope and concerns the watched unit."""
        if not any(item.unit.startswith(scope) for scope in self.scopes):
            return False
        if self.unit is None:
            return True
        if item.kind == "alert":
            return item.unit.startswith(self.unit)
        return item.unit == self.unit or (
            item.unit.startswith(self.unit) and len(item.unit) == child_length(self.unit)
        )


class Subscriber:
    """One client's bounded queue; overflow drops everything queued and asks for a resync."""

    def __init__(self, watch: Watch, size: int) -> None:
        self.watch = watch
        self.queue: asyncio.Queue[LiveItem] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, item: LiveItem) -> None:
        """Queue the item if the client wants it; never blocks, never grows past the bound."""
        if item.kind in ("rollup", "alert") and not self.watch.accepts(item):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop_and_resync(item)

    def _drop_and_resync(self, item: LiveItem) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
            self.dropped += 1
        self.dropped += 1
        self.queue.put_nowait(CLOSED if item is CLOSED else RESYNC)


class MessageSource(Protocol):
    """Where the hub's messages come from (NATS in the service, a fake in unit tests)."""

    async def run(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        """Subscribe and deliver messages until cancelled."""

    @property
    def connected(self) -> bool:
        """True while messages can arrive."""


class NatsSource:
    """A NATS connection of its own, subscribed to the rollup and alert subjects."""

    def __init__(self, url: str, retry_s: float = 2.0) -> None:
        self._url = url
        self._retry_s = retry_s
        self._client: Any = None

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return bool(self._client is not None and self._client.is_connected)

    async def run(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        """Connect (retrying until NATS answers), subscribe, then wait until cancelled."""

        async def reconnected() -> None:
            log.info("dashboard_nats_reconnected")
            on_reconnect()

        async def handler(msg: Any) -> None:
            deliver(msg.subject, msg.data)

        while self._client is None:
            try:
                self._client = await nats.connect(
                    nats_servers(self._url),
                    name="zhibao-dashboard",
                    connect_timeout=2,
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    reconnected_cb=reconnected,
                )
            except Exception as exc:  # NATS not up yet: keep trying
                log.warning("dashboard_nats_connect_failed", error=str(exc))
                await asyncio.sleep(self._retry_s)
        try:
            for subject in (ROLLUPS, ALERTS):
                await self._client.subscribe(subject, cb=handler)
            on_reconnect()  # anything published before we subscribed was missed
            await asyncio.Event().wait()
        finally:
            client, self._client = self._client, None
            with suppress(Exception):
                await client.close()


class LiveHub:
    """Fans messages from one source out to the connected clients."""

    def __init__(self, source: MessageSource, queue_size: int = 256) -> None:
        self._source = source
        self._queue_size = queue_size
        self._clients: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the source can deliver."""
        return self._source.connected

    @property
    def clients(self) -> int:
        """Number of connected clients."""
        return len(self._clients)

    def start(self) -> None:
        """Start the source once (lazily, on the first client; idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._source.run(self.deliver, self.resync_all))

    def subscribe(self, watch: Watch) -> Subscriber:
        """A new client's queue (starts the source if needed)."""
        self.start()
        subscriber = Subscriber(watch, self._queue_size)
        self._clients.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a client that went away."""
        self._clients.discard(subscriber)

    def deliver(self, subject: str, body: bytes) -> None:
        """Offer one NATS message to every client."""
        for item in parse(subject, body):
            for client in list(self._clients):
                client.offer(item)

    def resync_all(self) -> None:
        """Tell every client to re-read over HTTP (after a reconnect)."""
        for client in list(self._clients):
            client.offer(RESYNC)

    async def close(self) -> None:
        """End every stream and the source."""
        for client in list(self._clients):
            client.offer(CLOSED)
        await cancel_and_wait([self._task])
        self._task = None


def sse(event: str, data: dict[str, Any], retry_ms: int | None = None) -> str:
    """One server-sent event (JSON data on a single line)."""
    head = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {text}\n\n"


async def stream(
    hub: LiveHub,
    subscriber: Subscriber,
    heartbeat_s: float,
    now: Callable[[], str],
    authorised: Callable[[], bool] = lambda: True,
    recheck_s: float | None = None,
) -> AsyncIterator[str]:
    """The event stream of one client: hello, then items, with heartbeats between them.

    Every ``recheck_s`` seconds (default: with each heartbeat) ``authorised``
    is asked whether the client's token still holds; when it no longer does
    (revoked, expired) the stream says ``unauthorised`` and ends.
    A client that went away is noticed when a heartbeat cannot be sent.
    """
    clock = asyncio.get_running_loop().time
    recheck = heartbeat_s if recheck_s is None else recheck_s
    try:
        yield sse("hello", {"at": now(), "live": hub.connected}, retry_ms=3000)
        next_beat = next_check = clock()
        next_beat += heartbeat_s
        next_check += recheck
        while True:
            if clock() >= next_check:
                if not authorised():
                    yield sse("unauthorised", {"at": now()})
                    return
                next_check = clock() + recheck
            wait = max(0.0, min(next_beat, next_check) - clock())
            try:
                item = await asyncio.wait_for(subscriber.queue.get(), wait)
            except TimeoutError:
                if clock() >= next_beat:
                    yield sse("heartbeat", {"at": now(), "live": hub.connected})
                    next_beat = clock() + heartbeat_s
                continue
            if item.kind == "closed":
                return
            yield sse(item.kind, {**item.data, "at": now()})
            next_beat = clock() + heartbeat_s
    finally:
        hub.unsubscribe(subscriber)
