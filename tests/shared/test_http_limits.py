"""A slow client cannot hold a service's connection for ever, nor open them without bound.

Every service is served by ``serving.server_config`` (what ``serve`` runs): these tests
run it in a thread on a free port, with short deadlines, under both of uvicorn's HTTP
protocols, and talk to it over raw sockets. Each wait for the server to act is bounded
generously (``WAIT_S``, twenty deadlines): they assert that it acts, not how fast.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from tests.support.intake import RunningIntake
from zhibao_shared.http_limits import http_protocol
from zhibao_shared.natsserver import free_port
from zhibao_shared.serving import server_config
from zhibao_shared.settings import SILENT_MIN_AGE_S, ServiceSettings

DEADLINE_S = 0.5
WAIT_S = 20 * DEADLINE_S
HEAD = b"GET /ok HTTP/1.1\r\nHost: zhibao\r\n"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/client")
    async def client(request: Request) -> dict[str, str | None]:
        return {"host": request.client.host if request.client else None}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for part in range(4):
                await asyncio.sleep(DEADLINE_S)
                yield f"{part}\n".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    return app


@pytest.fixture(params=["httptools", "h11"])
def protocol(request: pytest.FixtureRequest) -> str:
    """Both of uvicorn's HTTP protocols: httptools, its choice here, and h11, its choice
    where httptools is not installed."""
    return str(request.param)


@contextmanager
def _serving(protocol: str, **settings: Any) -> Iterator[int]:
    """A server configured as ``serve`` configures a service's; yields its port."""
    options = {
        "http_header_timeout_s": DEADLINE_S,
        "http_body_timeout_s": DEADLINE_S,
        "host": "127.0.0.1",
        **settings,
    }
    service_settings = ServiceSettings(**options)
    port = free_port()
    config = server_config(_app(), service_settings, port)
    if protocol == "h11":
        config.http = http_protocol(
            service_settings.http_header_timeout_s, service_settings.http_max_silent, use_h11=True
        )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        while not server.started:
            assert thread.is_alive() and time.monotonic() - started < 20, "server did not start"
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout,
    ``WAIT_S``, fails the test if it never does)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open; it sent {received!r}")
    except ConnectionResetError:
        pass
    return received


def _one_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response's head and body (by its Content-Length), leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        body += chunk
    return head, body


def _trickle(sock: socket.socket) -> bytes:
    """Send a few bytes every tenth of a deadline until the server closes the connection;
    what it sent meanwhile (``WAIT_S`` without the close fails the test)."""
    sock.setblocking(False)
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < WAIT_S:
        try:
            sock.send(b"X-Slow: aaaa\r\n")
            chunk = sock.recv(65536)
        except BlockingIOError:
            time.sleep(DEADLINE_S / 10)
            continue
        except (BrokenPipeError, ConnectionResetError):
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server kept reading for {WAIT_S} s; it sent {received!r}")


def _is_408(response: bytes, part: str) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), response
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": f"request {part} not received within {DEADLINE_S:g} s"}


def _cut(reason: str) -> float:
    """``zhibao_http_connections_cut_total`` of ``reason`` as a service's /metrics shows it."""
    sample = REGISTRY.get_sample_value("zhibao_http_connections_cut_total", {"reason": reason})
    return sample or 0.0


def test_a_partial_request_head_is_answered_408_and_closed(protocol: str) -> None:
    before = _cut("head")
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        sock.sendall(HEAD)  # no blank line: the head never ends
        _is_408(_until_closed(sock), "head")
    assert _cut("head") == before + 1, "counted for the operator"


def test_a_connection_that_sends_nothing_is_closed(protocol: str) -> None:
    before = _cut("idle")
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        assert _until_closed(sock) == b"", "closed without an answer to no request"
    assert _cut("idle") == before + 1, "counted apart from slow clients"


def test_a_head_sent_a_byte_at_a_time_is_cut_off(protocol: str) -> None:
    """Slowloris: the bytes come well within any idle timeout, the head never ends."""
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        sock.sendall(HEAD)
        received = _trickle(sock)
        assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received


def test_a_body_that_stops_is_answered_408_and_closed(protocol: str) -> None:
    before = _cut("body")
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: zhibao\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n" + b"{" * 10
        )
        _is_408(_until_closed(sock), "body")
    assert _cut("body") == before + 1, "counted for the operator"


def test_others_are_served_while_slow_clients_are_held(protocol: str) -> None:
    with _serving(protocol) as port:
        slow = [_connect(port) for _ in range(6)]
        try:
            for sock in slow[:3]:
                sock.sendall(HEAD)
            for sock in slow[3:]:
                sock.sendall(b"POST /echo HTTP/1.1\r\nHost: z\r\ncontent-length: 9\r\n\r\n1")
            answer = httpx.get(f"http://127.0.0.1:{port}/ok", timeout=WAIT_S)
            assert answer.status_code == 200 and answer.json() == {"ok": True}
            answer = httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 5, timeout=WAIT_S)
            assert answer.json() == {"bytes": 5}
            for sock in slow[:3]:
                _is_408(_until_closed(sock), "head")
            for sock in slow[3:]:
                _is_408(_until_closed(sock), "body")
        finally:
            for sock in slow:
                sock.close()


def test_a_kept_alive_connections_next_partial_head_is_closed(protocol: str) -> None:
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        sock.sendall(HEAD + b"\r\n")
        head, body = _one_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body) == {"ok": True}
        assert b"connection: close" not in head.lower(), "kept alive"
        sock.sendall(HEAD)  # the next request's head never ends
        _is_408(_until_closed(sock), "head")


def test_a_body_the_app_never_read_cannot_hold_the_connection(protocol: str) -> None:
    """The app answers without reading the body (as intake does a bad token); the body
    keeps trickling in, so no next head can ever arrive."""
    with _serving(protocol) as port, closing(_connect(port)) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: zhibao\r\ncontent-length: 1000000\r\n\r\n1")
        head, _ = _one_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        _trickle(sock)


def test_silent_connections_never_keep_a_client_out(protocol: str) -> None:
    """Many connections opened and left silent (a flood from any number of addresses,
    no token needed): the oldest are closed, and a client is served."""
    before = _cut("crowded")
    # the head deadline far away: only crowding can close the silent connections
    with _serving(protocol, http_max_silent=3, http_header_timeout_s=60) as port:
        silent = [_connect(port) for _ in range(8)]
        try:
            time.sleep(SILENT_MIN_AGE_S + DEADLINE_S)  # all taken, and silent long enough
            answer = httpx.get(f"http://127.0.0.1:{port}/ok", timeout=WAIT_S)
            assert answer.status_code == 200, answer.text
            assert _until_closed(silent[0]) == b"", "the oldest is closed, unanswered"
        finally:
            for sock in silent:
                sock.close()
    assert _cut("crowded") >= before + 5, "counted for the operator"


def test_kept_alive_clients_beyond_the_silent_limit_are_not_cut(protocol: str) -> None:
    """Clients between two requests on kept-alive connections are not silent newcomers:
    however many, none is closed for crowding."""
    before = _cut("crowded")
    with _serving(protocol, http_max_silent=3, http_header_timeout_s=60) as port:
        clients = [_connect(port) for _ in range(8)]
        try:
            for _ in range(2):
                for sock in clients:
                    sock.sendall(HEAD + b"\r\n")
                for sock in clients:
                    head, _ = _one_response(sock)
                    assert head.startswith(b"HTTP/1.1 200 "), head
                time.sleep(SILENT_MIN_AGE_S + DEADLINE_S / 10)
                _connect(port).close()  # a newcomer, to set off any crowding
        finally:
            for sock in clients:
                sock.close()
    assert _cut("crowded") == before


def test_a_response_streamed_past_the_body_deadline_is_not_cut(protocol: str) -> None:
    """The body's deadline ends with the body: a stream (waiting on ``receive`` for the
    client to leave, as Starlette's does) runs for four deadlines."""
    with _serving(protocol) as port:
        answer = httpx.get(f"http://127.0.0.1:{port}/stream", timeout=WAIT_S)
        assert answer.status_code == 200 and answer.text == "0\n1\n2\n3\n"


@pytest.mark.integration
@pytest.mark.parametrize(
    "intake_overrides", [{"http_header_timeout_s": DEADLINE_S, "http_body_timeout_s": DEADLINE_S}]
)
def test_a_slow_submission_to_intakes_fast_path_is_answered_408(intake: RunningIntake) -> None:
    """Intake's ``POST /v1/events`` is answered before FastAPI's middleware: the deadline
    holds there too, and intake serves the next submission."""
    token = intake.token("640106")
    port = int(intake.url.rsplit(":", 1)[1])
    with closing(_connect(port)) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: zhibao\r\n"
            + f"authorization: Bearer {token}\r\n".encode()
            + b"content-type: application/cloudevents-batch+json\r\n"
            b"content-length: 400\r\n\r\n[{"
        )
        _is_408(_until_closed(sock), "body")
    answer = httpx.post(
        f"{intake.url}/v1/events",
        content=b"[]",
        headers={
            "authorization": f"Bearer {token}",
            "content-type": "application/cloudevents-batch+json",
        },
        timeout=WAIT_S,
    )
    assert answer.status_code < 500, answer.text


@pytest.mark.parametrize(
    ("proxies", "seen"), [(None, "127.0.0.1"), ("127.0.0.1", "203.0.113.7")], ids=["none", "set"]
)
def test_forwarded_addresses_are_believed_only_from_the_proxies_configured(
    protocol: str, proxies: str | None, seen: str
) -> None:
    """Otherwise any local client (or a proxy passing the header through) writes any
    address into the logs and the audit trail."""
    with _serving(protocol, forwarded_allow_ips=proxies) as port:
        answer = httpx.get(
            f"http://127.0.0.1:{port}/client", headers={"X-Forwarded-For": "203.0.113.7"}
        )
    assert answer.json() == {"host": seen}
