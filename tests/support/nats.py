"""A real nats-server per test, on a free port (as nats.py's own suite does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from zhibao_shared.bus_access import INGRESS_USER, inbox_prefix
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


async def community_system(url: str) -> Client:
    """Connected as a community system that speaks NATS: on the ingress user's inbox
    prefix, the only one intake answers (and, on an authenticated bus, that user reads)."""
    return await nats.connect(url, inbox_prefix=inbox_prefix(INGRESS_USER))
