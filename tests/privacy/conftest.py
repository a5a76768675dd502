"""The whole system as real processes, with everything it lets out recorded.

``zhibao_cli.stack.Stack`` runs nats-server, intake, aggregator (with the
command-centre page) and alerts as child processes sharing one data
directory, each service's stdout and stderr going to a log file (at DEBUG
level, JSON). While residents are reported, a NATS client subscribed to
``>`` records every message on the bus and a browser-like client holds the
dashboard's live stream open. The tests then scan what was recorded.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from tests.support.webhook import Receiver, receiving
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

STREET = "640106001"
COMMUNITY = "640106001001"


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout_s:.0f}s waiting for {what}")


@dataclass
class BusTap:
    """A NATS client subscribed to ``>``: every message published on the bus, headers too."""

    url: str
    messages: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe (returns once the subscription is registered with the server)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("the bus tap could not subscribe")

    async def _run(self) -> None:
        client = await nats.connect(self.url)

        async def record(msg: Msg) -> None:
            self.messages.append((msg.subject, msg.data, dict(msg.headers or {})))

        await client.subscribe(">", cb=record)
        await client.flush()
        self._ready.set()
        await asyncio.to_thread(self._stop.wait)
        await client.drain()

    def stop(self) -> None:
        """Unsubscribe and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def subjects(self) -> list[str]:
        """Subjects of the messages seen so far."""
        return [subject for subject, _, _ in list(self.messages)]


@dataclass
class LiveTap:
    """The dashboard's ``/v1/live`` stream held open as the page holds it; raw lines kept."""

    url: str
    token: str
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Open the stream; returns once it says it is live (its NATS subscription is up),
        in its hello or at the latest in the first heartbeat (every 15 s)."""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(40):
            raise AssertionError(f"the live stream never said it was live: {self.lines}")

    def _read(self) -> None:
        params = {"access_token": self.token}
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with httpx.stream("GET", f"{self.url}/v1/live", params=params, timeout=timeout) as r:
                for line in r.iter_lines():
                    self.lines.append(line)
                    if line.startswith("data: ") and '"live":true' in line:
                        self._ready.set()
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            return

    def stop(self) -> None:
        """Stop reading at the next line (the stack's shutdown ends the stream anyway)."""
        self._stop.set()

    def text(self) -> str:
        """Everything received so far."""
        return "\n".join(list(self.lines))


@dataclass
class PrivacySystem:
    """The running stack and the recorders around it."""

    stack: Stack
    data_dir: Path
    log_dir: Path
    pseudonym_key: bytes
    tokens: TokenStore
    webhook: Receiver
    bus: BusTap
    live: LiveTap
    reporter: str
    operator: str

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return self.stack.url(service)


@pytest.fixture(scope="module")
def privacy_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivacySystem]:
    """nats-server + intake + aggregator + alerts as processes, a webhook, a bus tap, a live tap."""
    root = tmp_path_factory.mktemp("privacy")
    data = root / "data"
    logs = data / "logs"
    key = secrets.token_urlsafe(48)
    with receiving() as webhook:
        oncall = root / "oncall.yaml"
        oncall.write_text(f"webhooks: ['{webhook.url}/page']\ngroup_wait_seconds: 0\n")
        alerts_port = free_port()
        env = {
            **os.environ,
            "ZHIBAO_DATA_DIR": str(data),
            "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
            "ZHIBAO_INTAKE_PORT": str(free_port()),
            "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
            "ZHIBAO_ALERTS_PORT": str(alerts_port),
            "ZHIBAO_RESPONSE_PORT": str(free_port()),
            "ZHIBAO_ALERTS_URL": f"http://127.0.0.1:{alerts_port}",
            "ZHIBAO_ALERTS_ONCALL_PATH": str(oncall),
            "ZHIBAO_AGGREGATOR_PUBLISH_INTERVAL_S": "0.2",
            "ZHIBAO_PSEUDONYM_KEY": key,
            "ZHIBAO_PUBLIC_MIN_LEVEL": "street",
            "ZHIBAO_PUBLIC_RELEASE_AFTER": "PT0S",  # today's release, made when first read
            "ZHIBAO_LOG_LEVEL": "DEBUG",
            "ZHIBAO_LOG_JSON": "true",
        }
        tokens = TokenStore.in_data_dir(data)
        reporter = tokens.create(scopes=[STREET], role=Role.REPORT, name="gate-3")[1]
        operator = tokens.create(scopes=["6401"], role=Role.OPERATE, name="city duty")[1]
        stack = Stack(env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], log_dir=logs)
        with stack:
            bus = BusTap(stack.bus_url)
            bus.start()
            live = LiveTap(stack.url("aggregator"), operator)
            live.start()
            try:
                yield PrivacySystem(
                    stack, data, logs, key.encode(), tokens, webhook, bus, live, reporter, operator
                )
            finally:
                live.stop()
                bus.stop()
        tokens.close()
