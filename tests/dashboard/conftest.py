"""A real system for the dashboard tests: nats-server, intake, aggregator (with the page), alerts.

Each service runs its own uvicorn server on a free loopback port (in a thread,
as ``tests/support/intake.py`` does) and they share one data directory, so
one token works everywhere, exactly as under ``zhibao up``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from zhibao_aggregator.bootstrap import create_app as aggregator_app
from zhibao_aggregator.migrate import migrate as migrate_aggregator
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_alerts.bootstrap import create_app as alerts_app
from zhibao_alerts.bootstrap import migrate as migrate_alerts
from zhibao_alerts.settings import AlertsSettings
from zhibao_cli.stack import wait_ready
from zhibao_intake.bootstrap import create_app as intake_app
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.tokens import Role, TokenStore

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass
class Served:
    """One uvicorn server in a thread."""

    server: uvicorn.Server
    thread: threading.Thread

    @classmethod
    def start(cls, app: FastAPI, port: int) -> Served:
        """Serve ``app`` on 127.0.0.1:``port``."""
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        return cls(server, thread)

    def stop(self) -> None:
        """Ask the server to exit and wait a bounded time."""
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class System:
    """The running system and helpers to use it."""

    nats: NatsServer
    tokens: TokenStore
    intake_url: str
    aggregator_url: str
    alerts_url: str
    served: list[Served] = field(default_factory=list)

    def token(self, *scopes: str, role: Role, name: str = "", person: str | None = None) -> str:
        """A new token's secret (``person``: a personal token, which acknowledging takes)."""
        return self.tokens.create(scopes=scopes, role=role, name=name, person=person)[1]

    def post(self, events: list[dict[str, Any]], token: str) -> httpx.Response:
        """Post events through intake (a batch), asserting they were all stored."""
        answer = httpx.post(
            f"{self.intake_url}/v1/events",
            json=events,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/cloudevents-batch+json",
            },
            timeout=20,
        )
        assert answer.status_code == 202, answer.text
        return answer


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """nats-server + intake + alerts + aggregator with the page, for one test module."""
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "data"
    nats = NatsServer(store_dir=root / "jetstream", log_file=root / "nats.log")
    nats.start()
    common: dict[str, Any] = {"nats_url": nats.url, "data_dir": data, "log_json": True}
    intake = IntakeSettings(intake_port=free_port(), **common)
    oncall = root / "oncall.yaml"
    oncall.write_text("webhooks: []\n")
    alerts = AlertsSettings(alerts_port=free_port(), alerts_oncall_path=oncall, **common)
    aggregator = AggregatorSettings(
        aggregator_port=free_port(),
        aggregator_publish_interval_s=0.2,
        dashboard_heartbeat_s=2.0,
        alerts_url=f"http://127.0.0.1:{alerts.alerts_port}",
        **common,
    )
    asyncio.run(migrate_aggregator(aggregator.database_url()))
    asyncio.run(migrate_alerts(alerts))
    running = System(
        nats,
        TokenStore.in_data_dir(data),
        f"http://127.0.0.1:{intake.intake_port}",
        f"http://127.0.0.1:{aggregator.aggregator_port}",
        f"http://127.0.0.1:{alerts.alerts_port}",
    )
    try:
        running.served.append(Served.start(intake_app(intake), intake.intake_port))
        running.served.append(Served.start(alerts_app(alerts), alerts.alerts_port))
        running.served.append(Served.start(aggregator_app(aggregator), aggregator.aggregator_port))
        for url in (running.intake_url, running.alerts_url, running.aggregator_url):
            assert wait_ready(url, 60), f"{url} did not become ready"
        yield running
    finally:
        for served in reversed(running.served):
            served.stop()
        running.tokens.close()
        nats.stop()
