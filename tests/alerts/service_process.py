"""The alerts service as a real ``zhibao alerts`` process, and events published to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats

from tests.deploy.services import ServiceProcess, zhibao
from zhibao_alerts.settings import AlertsSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.events import PublishedEvent, published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore


@dataclass
class RunningAlerts:
    """A running alerts process, its SQLite file (when it uses SQLite) and its tokens."""

    url: str
    data_dir: Path
    nats_url: str
    log: Path

    @property
    def sqlite_file(self) -> Path:
        """The embedded database (``ZHIBAO_DATA_DIR/alerts.db``)."""
        return self.data_dir / "alerts.db"

    def token(
        self,
        scope: str,
        role: Role = Role.OPERATE,
        name: str = "duty",
        person: str | None = "张伟 (值班员)",
    ) -> tuple[str, str]:
        """A new token for ``scope``: (its id, its secret); a personal one unless
        ``person`` is None (acknowledging and silencing take a personal token)."""
        store = TokenStore.in_data_dir(self.data_dir)
        try:
            token, secret = store.create(scopes=[scope], role=role, name=name, person=person)
        finally:
            store.close()
        return token.id, secret

    def call(self, method: str, path: str, secret: str, **kw: object) -> httpx.Response:
        """One authenticated request."""
        headers = {"authorization": f"Bearer {secret}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


@contextmanager
def running_alerts(
    tmp_path: Path,
    nats_server: NatsServer,
    oncall_yaml: str = "{}\n",
    *,
    database_url: str | None = None,
    before_start: Callable[[dict[str, str]], None] | None = None,
) -> Iterator[RunningAlerts]:
    """Migrate (``zhibao alerts migrate``) and run ``zhibao alerts`` until the block ends.

    ``before_start`` gets the environment after the migration, to seed the database.
    """
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    oncall = tmp_path / "oncall.yaml"
    oncall.write_text(oncall_yaml)
    env = {
        "ZHIBAO_NATS_URL": nats_server.url,
        "ZHIBAO_DATA_DIR": str(data_dir),
        "ZHIBAO_ALERTS_ONCALL_PATH": str(oncall),
        "ZHIBAO_LOG_JSON": "true",
    }
    if database_url is not None:
        env["ZHIBAO_ALERTS_DATABASE_URL"] = database_url
    zhibao("alerts", "migrate", env=env)
    if before_start is not None:
        before_start(env)
    service = ServiceProcess("alerts", env, tmp_path / "alerts.log")
    service.start()
    try:
        yield RunningAlerts(service.url, data_dir, nats_server.url, service.log)
    finally:
        service.stop()


def publish(nats_url: str, events: list[PublishedEvent]) -> None:
    """Publish events on the events stream, as intake does."""

    async def send() -> None:
        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            await ensure_stream(js, events_stream_config(AlertsSettings()))
            for event in events:
                await js.publish(
                    event_subject(event.subject, event.type.split(".")[1]),
                    published_payload(event),
                    stream=EVENTS_STREAM,
                    headers={"Nats-Msg-Id": event.id},
                )
        finally:
            await client.close()

    asyncio.run(send())


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")
