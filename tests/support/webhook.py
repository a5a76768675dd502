"""A real HTTP receiver on loopback that records what it is sent (webhook tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def _released() -> threading.Event:
    released = threading.Event()
    released.set()
    return released


@dataclass
class Receiver:
    """Recorded deliveries by path; ``status`` is what it answers."""

    url: str
    status: int = 200
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: (path, Idempotency-Key) of every request, answered 2xx or not
    keys: list[tuple[str, str | None]] = field(default_factory=list)
    #: Cleared, requests are held unanswered until it is set again (a slow receiver).
    release: threading.Event = field(default_factory=_released)
    #: Set when a request has arrived.
    arrived: threading.Event = field(default_factory=threading.Event)

    def bodies(self, path: str = "/") -> list[dict[str, Any]]:
        """Bodies received on one path."""
        return [body for p, body in self.received if p == path]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port, for as long as the block runs."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            receiver.keys.append((self.path, self.headers.get("idempotency-key")))
            receiver.arrived.set()
            receiver.release.wait(timeout=60)
            if receiver.status < 300:
                receiver.received.append((self.path, body))
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()  # no request stays held past the test
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port."""
    with receiving() as receiver:
        yield receiver
