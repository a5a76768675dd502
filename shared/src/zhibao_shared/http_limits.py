"""Deadlines for every service's HTTP connections: a slow client cannot hold one for ever.

uvicorn bounds neither how long a client may take to send a request's head
(request line and headers) nor its body: ``timeout_keep_alive`` only closes a
kept-alive connection on which nothing at all arrives. A client sending a
byte now and then (slowloris), or stopping mid-request, kept its connection,
and a task awaiting its body, open for ever. Two mechanisms close that hole,
both installed by :func:`zhibao_shared.serving.server_config` for every service:

* the request head: uvicorn's HTTP protocol, subclassed (:func:`http_protocol`),
  gives a connection ``ZHIBAO_HTTP_HEADER_TIMEOUT_S`` to deliver a complete head
  from when it starts waiting for one: when the connection is made, and after
  each response (a kept-alive connection's next request). Late, the connection
  is closed, after a 408 if part of a request had arrived (a connection left
  idle is closed without one: a client may be about to reuse it, and would
  read the 408 as the answer to its next request).
* the body: :class:`BodyDeadline` wraps the ASGI app (so it also covers
  intake's fast path, which answers before FastAPI's middleware), and gives
  the body ``ZHIBAO_HTTP_BODY_TIMEOUT_S`` from the start of the request. Late,
  the request is answered 408 and its connection closed; the app reads a
  disconnect. A body the app never reads is the protocol's: the next head
  cannot arrive before it, so the head's deadline, armed after the response,
  closes such a connection.

Connections left silent cannot crowd clients out either: beyond
``ZHIBAO_HTTP_MAX_SILENT`` connections that have sent nothing since they opened,
the oldest is closed (:class:`Silent`). There is deliberately no cap on open
connections: uvicorn's ``limit_concurrency`` counts silent connections too, so
a thousand of them, from one address and with no token, made every service
answer 503 to everyone.

The protocol subclasses rely on uvicorn's internals (0.54: ``cycle``, a new
one per request head, ``on_response_complete``, ``handle_websocket_upgrade``);
``tests/shared/test_http_limits.py`` holds them to it.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

import h11
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from zhibao_shared.asgi_answers import json_headers
from zhibao_shared.settings import HTTP_HEADER_TIMEOUT_S, HTTP_MAX_SILENT, SILENT_MIN_AGE_S

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - without httptools uvicorn serves with h11, as do we
    HAVE_HTTPTOOLS = False
else:
    HAVE_HTTPTOOLS = True

_DISCONNECT: Message = {"type": "http.disconnect"}

CONNECTIONS_CUT = Counter(
    "zhibao_http_connections_cut_total",
    "Connections the server closed: a request head begun but late (head), a body not "
    "received in time (body), a new connection that sent nothing in time (idle), the "
    "oldest of too many new connections that had sent nothing (crowded)",
    ["reason"],
)


def timeout_body(part: str, timeout_s: float) -> bytes:
    """A 408's JSON body, shaped as the services' other errors (``{"detail": …}``)."""
    detail = f"request {part} not received within {timeout_s:g} s"
    return json.dumps({"detail": detail}, separators=(",", ":")).encode("utf-8")


class BodyDeadline:
    """An ASGI app whose HTTP requests' bodies must arrive within ``timeout_s``.

    Reading the body past the deadline answers 408 (``connection: close``, so
    uvicorn closes the connection after it) unless the app has started its own
    answer, and hands the app ``http.disconnect``, as if the client had left;
    what the app sends after that is dropped, and what it raises is not
    re-raised (it was told the client is gone). Once the last part of the body
    has been read, ``receive`` is the server's again: waiting on it for a
    disconnect (a live stream) has no deadline.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _TimedRequest(
            receive, send, asyncio.get_running_loop().time() + self.timeout_s, self.timeout_s
        )
        try:
            await self.app(scope, request.receive, request.send)
        except Exception:
            if not request.timed_out:
                raise


class _TimedRequest:
    """One request's ``receive`` with the body's deadline, and its ``send``."""

    def __init__(self, receive: Receive, send: Send, deadline: float, timeout_s: float) -> None:
        self._receive = receive
        self._send = send
        self._deadline = deadline
        self._timeout_s = timeout_s
        self.body_read = False
        self.started = False
        self.timed_out = False

    async def receive(self) -> Message:
        if self.timed_out:
            return _DISCONNECT
        if self.body_read:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            CONNECTIONS_CUT.labels("body").inc()
            if not self.started:
                body = timeout_body("body", self._timeout_s)
                headers = [*json_headers(body), (b"connection", b"close")]
                await self._send({"type": "http.response.start", "status": 408, "headers": headers})
                await self._send({"type": "http.response.body", "body": body})
            return _DISCONNECT
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_read = True
        return message

    async def send(self, message: Message) -> None:
        if self.timed_out:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class Silent:
    """The connections of one server that have sent nothing since they opened, oldest first.

    Beyond ``limit`` of them, the oldest that has been silent ``min_age_s`` or longer is
    closed (:meth:`_HeadWait.cut`): connections opened and left silent, from any number of
    addresses, never keep a new client out (a cap on open connections would: each silent
    one counts until its head deadline). A client sends its request as soon as it connects
    and leaves this list with its first bytes; the minimum age spares a burst of new
    connections whose requests are still in the socket buffers (the loop makes every
    connection it accepts before it reads from any). A kept-alive connection between two
    requests is not silent in this sense (uvicorn's keep-alive timeout closes it), nor is
    one whose request is in progress.
    """

    def __init__(self, limit: int, min_age_s: float = SILENT_MIN_AGE_S) -> None:
        self.limit = limit
        self.min_age_s = min_age_s
        self._since: OrderedDict[_HeadWait, float] = OrderedDict()

    def add(self, wait: _HeadWait, now: float) -> None:
        """A connection opened at ``now`` and has sent nothing yet; beyond the limit, the
        oldest silent long enough are closed."""
        self._since[wait] = now
        while len(self._since) > self.limit:
            oldest, since = next(iter(self._since.items()))
            if now - since < self.min_age_s:
                return
            del self._since[oldest]
            oldest.cut()

    def discard(self, wait: _HeadWait) -> None:
        """The connection sent something, or closed."""
        self._since.pop(wait, None)


class _HeadWait:
    """The request-head deadline of one connection, for either uvicorn HTTP protocol.

    Both protocols make a new ``cycle`` for each request head they complete: the
    head awaited has arrived when the connection's ``cycle`` is no longer the
    one it had when the wait started.
    """

    def __init__(
        self, connection: HttpToolsProtocol | H11Protocol, timeout_s: float, silent: Silent
    ) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._silent = silent
        self._timer: asyncio.TimerHandle | None = None
        self._after: object = None
        self._partial = False
        self._heard = False  # the connection has sent something since it opened

    def start(self) -> None:
        """Wait for the next head, unless the connection is closing or busy with a request
        (pipelined heads: the wait starts after the last of their responses)."""
        connection = self._connection
        cycle = connection.cycle
        if connection.transport.is_closing() or (cycle is not None and not cycle.response_complete):
            return
        self.cancel()
        self._after = cycle
        self._partial = False
        self._timer = connection.loop.call_later(self._timeout_s, self._expire)
        if not self._heard:
            self._silent.add(self, connection.loop.time())

    def received(self) -> None:
        """Part of a request arrived (a late head is then answered 408)."""
        self._partial = True
        if not self._heard:
            self._heard = True
            self._silent.discard(self)

    @property
    def waiting(self) -> bool:
        """Whether the connection is still open and waiting for the head."""
        connection = self._connection
        return connection.cycle is self._after and not connection.transport.is_closing()

    def cancel(self) -> None:
        """Wait no more (the connection is closing or no longer speaks HTTP)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._silent.discard(self)

    def cut(self) -> None:
        """Close the connection now: too many connections are silent (see :class:`Silent`)."""
        self.cancel()
        self._close("crowded")

    def _expire(self) -> None:
        self._timer = None
        self._silent.discard(self)
        if self.waiting:
            self._close("head" if self._partial else "idle")

    def _close(self, reason: str) -> None:
        CONNECTIONS_CUT.labels(reason).inc()
        connection = self._connection
        if reason == "head":
            body = timeout_body("head", self._timeout_s)
            head = [b"HTTP/1.1 408 Request Timeout\r\n"]
            headers = [
                *connection.server_state.default_headers,
                *json_headers(body),
                (b"connection", b"close"),
            ]
            head.extend(name + b": " + value + b"\r\n" for name, value in headers)
            connection.transport.write(b"".join([*head, b"\r\n", body]))
        connection.transport.close()


class _HeadDeadline(asyncio.Protocol):
    """The hooks both HTTP protocol subclasses add, placed before uvicorn's protocol in
    their bases: wait for a head when a connection opens and after each response, note
    what arrives, stop waiting when it closes (:class:`_HeadWait`)."""

    head_timeout_s: float = HTTP_HEADER_TIMEOUT_S
    silent: Silent = Silent(HTTP_MAX_SILENT)
    head_wait: _HeadWait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_wait.start()

    def data_received(self, data: bytes) -> None:
        self.head_wait.received()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_wait.cancel()
        super().connection_lost(exc)


if HAVE_HTTPTOOLS:

    class HttpToolsHeadDeadline(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (its choice when httptools is installed), closing a
        connection whose request head is late."""

        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            HttpToolsProtocol.__init__(self, config, server_state, app_state, _loop)
            self.head_wait = _HeadWait(self, self.head_timeout_s, self.silent)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.head_wait.start()

        def handle_websocket_upgrade(self) -> None:
            self.head_wait.cancel()
            super().handle_websocket_upgrade()


class H11HeadDeadline(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol (its choice without httptools), closing a connection whose
    request head is late."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        H11Protocol.__init__(self, config, server_state, app_state, _loop)
        self.head_wait = _HeadWait(self, self.head_timeout_s, self.silent)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.head_wait.start()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self.head_wait.cancel()
        super().handle_websocket_upgrade(event)


def http_protocol(
    head_timeout_s: float,
    max_silent: int = HTTP_MAX_SILENT,
    *,
    use_h11: bool = not HAVE_HTTPTOOLS,
) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=…)``: uvicorn's own choice (httptools
    when installed, else h11), closing connections whose request head is late, and the
    oldest silent ones beyond ``max_silent`` (one :class:`Silent` a server)."""
    attributes = {"head_timeout_s": head_timeout_s, "silent": Silent(max_silent)}
    if use_h11:
        return type("H11HeadDeadline", (H11HeadDeadline,), attributes)
    return type("HttpToolsHeadDeadline", (HttpToolsHeadDeadline,), attributes)
