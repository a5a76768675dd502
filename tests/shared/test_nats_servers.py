"""ZHIBAO_NATS_URL may list a cluster's nodes; brokers fail over between them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhibao_shared.broker import make_broker, stop_broker
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.settings import ZhibaoSettings, nats_servers


def test_one_url_is_one_server() -> None:
    assert nats_servers("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


def test_a_comma_separated_list_is_split_and_trimmed() -> None:
    url = "tls://u:p@nats-1:4222, tls://u:p@nats-2:4222 ,tls://u:p@nats-3:4222"
    assert nats_servers(url) == [
        "tls://u:p@nats-1:4222",
        "tls://u:p@nats-2:4222",
        "tls://u:p@nats-3:4222",
    ]


@pytest.mark.parametrize("url", ["", "nats://a:4222,", "nats://a:4222,,nats://b:4222", " , "])
def test_an_empty_entry_is_refused_by_settings(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ZHIBAO_NATS_URL", url)
    with pytest.raises(ValidationError, match="empty server entry"):
        ZhibaoSettings()


@pytest.mark.integration
async def test_the_broker_connects_past_a_dead_server_in_the_list(
    nats_server: NatsServer,
) -> None:
    """The first listed server does not answer; the broker connects to the next one."""
    dead = f"nats://127.0.0.1:{free_port()}"
    settings = ZhibaoSettings(nats_url=f"{dead},{nats_server.url}")
    broker = make_broker(settings, name="servers-test")
    try:
        await broker.start()
        connection = broker.config.broker_config.connection_state.connection
        assert connection.is_connected
        assert connection.connected_url is not None
        assert connection.connected_url.port == nats_server.port
    finally:
        await stop_broker(broker)


def test_starting_a_server_leaves_the_folder_around_its_store_as_it_was(tmp_path: Path) -> None:
    """The configuration file is owner-only, but the folder it is written to keeps its
    permissions (a store directly under /tmp must not make /tmp private)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    server = NatsServer(store_dir=shared / "jetstream")
    server.start()
    try:
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
        assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
    finally:
        server.stop()
