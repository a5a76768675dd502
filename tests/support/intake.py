"""A real intake server (uvicorn on a free port, in a thread) against a real nats-server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from zhibao_cli.stack import wait_ready
from zhibao_intake.bootstrap import create_app
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.serving import server_config
from zhibao_shared.tokens import Role, TokenStore


@dataclass
class RunningIntake:
    """An intake instance and what a test needs to talk to it."""

    url: str
    settings: IntakeSettings
    tokens: TokenStore
    nats: NatsServer

    def token(self, *scopes: str, role: Role = Role.REPORT) -> str:
        """A new bearer token (created while the server runs)."""
        return self.tokens.create(scopes=scopes, role=role)[1]

    def post(self, token: str, events: list[dict[str, Any]]) -> httpx.Response:
        """POST ``events`` as one JSON batch to /v1/events with ``token``."""
        return httpx.post(
            f"{self.url}/v1/events",
            json=events,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Block until /readyz answers 200."""
        if not wait_ready(self.url, timeout_s):
            raise TimeoutError("intake did not become ready")


@pytest.fixture
def intake_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings a test module wants changed (override this fixture in the module), or a
    test (``@pytest.mark.parametrize("intake_overrides", [{...}], indirect=True)``)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def intake(
    nats_server: NatsServer, tmp_path: Path, intake_overrides: dict[str, Any]
) -> Iterator[RunningIntake]:
    """Intake on a free port, connected to the test's nats-server."""
    settings = IntakeSettings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        intake_port=free_port(),
        publish_timeout_s=2.0,
        max_body_bytes=256 * 1024,
        max_batch_items=200,
        log_json=True,
        **intake_overrides,
    )
    # Configured as ``zhibao intake`` serves it (deadlines, connection cap).
    server = uvicorn.Server(server_config(create_app(settings), settings, settings.intake_port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    running = RunningIntake(
        f"http://127.0.0.1:{settings.intake_port}",
        settings,
        TokenStore(settings.data_dir / "tokens.db"),
        nats_server,
    )
    try:
        running.wait_ready()
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        running.tokens.close()
