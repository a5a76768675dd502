"""An on-call webhook receiver that can fail (HTTP 500) or be slow for a while, then recover.

It records every request it handled: which alert instances the body carried
(Alertmanager ``fingerprint`` + ``startsAt``: the dedup key of the alert and
when that alert fired) and what it answered, so a test can tell a page that
was delivered once from one delivered twice and from one never delivered.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

#: An alert instance as a receiver sees it: (fingerprint, startsAt, status).
PageKey = tuple[str, str, str]


@dataclass
class Handled:
    """One request: the alert instances it carried and the HTTP status answered."""

    pages: tuple[PageKey, ...]
    status: int
    slow: bool
    #: the sender's outbox ids (Idempotency-Key): a resend of an arrived request repeats one
    ids: frozenset[str] = frozenset()


@dataclass
class PagingReceiver:
    """A real HTTP server on loopback; ``fail_for`` and ``slow_for`` change its behaviour."""

    url: str = ""
    handled: list[Handled] = field(default_factory=list)
    _fail_until: float = 0.0
    _slow_until: float = 0.0
    _delay_s: float = 0.0
    _armed: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> PagingReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/page"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_for(self, seconds: float) -> None:
        """From the next request on, answer 500 to everything for ``seconds`` (an outage of
        the paging system that pages actually run into)."""
        with self._lock:
            self._armed["fail"] = seconds

    def slow_for(self, seconds: float, delay_s: float) -> None:
        """From the next request on, take ``delay_s`` before answering, for ``seconds``."""
        with self._lock:
            self._delay_s = delay_s
            self._armed["slow"] = seconds

    def answer(self, body: dict[str, Any], key: str | None = None) -> int:
        """Decide (and wait out) the answer to one request, recording it."""
        now = time.monotonic()
        with self._lock:
            if "fail" in self._armed:
                self._fail_until = now + self._armed.pop("fail")
            if "slow" in self._armed:
                self._slow_until = now + self._armed.pop("slow")
            status = 500 if now < self._fail_until else 200
            slow = now < self._slow_until
        if slow:
            time.sleep(self._delay_s)
        with self._lock:
            ids = frozenset((key or "").split(",")) - {""}
            self.handled.append(Handled(pages_in(body), status, slow, ids))
        return status

    def delivered(self) -> Counter[PageKey]:
        """How many times each alert instance was accepted (answered 2xx)."""
        with self._lock:
            return Counter(p for h in self.handled if h.status < 300 for p in h.pages)

    def delivered_in_effect(self) -> Counter[PageKey]:
        """Like :meth:`delivered`, but a resend that repeats an outbox id already accepted
        for the same alert instance is not counted: a receiver honouring Idempotency-Key
        drops it."""
        seen: dict[PageKey, set[str]] = {}
        counted: Counter[PageKey] = Counter()
        with self._lock:
            accepted = [h for h in self.handled if h.status < 300]
        for handled in accepted:
            for page in handled.pages:
                earlier = seen.setdefault(page, set())
                if not (handled.ids and handled.ids & earlier):
                    counted[page] += 1
                earlier |= handled.ids
        return counted

    def refused(self) -> int:
        """Requests answered with an error."""
        with self._lock:
            return sum(h.status >= 300 for h in self.handled)

    def slowed(self) -> int:
        """Requests answered late on purpose."""
        with self._lock:
            return sum(h.slow for h in self.handled)


def pages_in(body: dict[str, Any]) -> tuple[PageKey, ...]:
    """The alert instances in an Alertmanager v4 webhook body (grouped bodies carry several)."""
    alerts = body.get("alerts") if isinstance(body, dict) else None
    if not isinstance(alerts, list):
        return ()
    return tuple(
        (str(a.get("fingerprint")), str(a.get("startsAt")), str(a.get("status")))
        for a in alerts
        if isinstance(a, dict)
    )


def _handler(receiver: PagingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            status = receiver.answer(body, self.headers.get("idempotency-key"))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    return Handler
