"""A real nats-server per test, on a free port (as nats.py's own suite does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zhibao_shared.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh JetStream-enabled nats-server for one test."""
    server = NatsServer(store_dir=tmp_path / "jetstream", log_file=tmp_path / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
