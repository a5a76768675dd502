"""The shipped NATS configuration validates; its permissions and TLS hold on a real server."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig

from tests.deploy.support import (
    NODE_CONFIGS,
    check_config,
    node_ports,
    render_node_config,
    server_env,
    single_node_config,
    user_url,
)
from zhibao_shared.bus_access import deploy_accounts_conf, inbox_prefix
from zhibao_shared.natsserver import free_port, nats_server_binary, wait_for_port

pytestmark = pytest.mark.integration

EVENT = "zhibao.events.640106.640106001001.screening"


@pytest.mark.parametrize("number", [1, 2, 3])
def test_every_node_config_validates(number: int, tmp_path: Path, dev_certs: Path) -> None:
    """nats-server -t accepts each node's config (certificates made by make-certs.sh)."""
    config = render_node_config(number, node_ports(), dev_certs, tmp_path / "js", tmp_path)
    result = check_config(config, server_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_a_node_refuses_to_start_without_the_passwords(tmp_path: Path, dev_certs: Path) -> None:
    """No password in the environment: the config is refused (no user gets an empty password)."""
    config = render_node_config(1, node_ports(), dev_certs, tmp_path / "js", tmp_path)
    result = check_config(config, server_env(with_passwords=False))
    assert result.returncode != 0
    assert "NATS_INTAKE_PASSWORD" in result.stdout + result.stderr


def test_accounts_conf_is_rendered_from_the_permission_table() -> None:
    """deploy/nats/accounts.conf is what `zhibao bus-accounts` renders: the users and
    permissions of a deployment are those of `zhibao up` (zhibao_shared.bus_access)."""
    shipped = (NODE_CONFIGS[0].parent / "accounts.conf").read_text()
    assert shipped == deploy_accounts_conf(), "run: zhibao bus-accounts > deploy/nats/accounts.conf"


def test_node_configs_differ_only_in_their_name() -> None:
    """Three nodes of one cluster: same settings, each its own server_name."""
    texts = [path.read_text() for path in NODE_CONFIGS]
    normalised = {
        text.replace(f"server_name: nats-{n}\n", "server_name: nats-N\n").replace(
            f"node {n} of", "node N of"
        )
        for n, text in enumerate(texts, start=1)
    }
    assert len(normalised) == 1
    for n, text in enumerate(texts, start=1):
        assert f"server_name: nats-{n}\n" in text


def start_server(config: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    """A nats-server child with the test passwords; waits until it listens."""
    process = subprocess.Popen(
        [nats_server_binary(), "--config", str(config)],
        env=server_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    if not wait_for_port("127.0.0.1", port, 15):
        process.kill()
        raise AssertionError(f"nats-server did not start: {log.read_text()}")
    return process


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[int]:
    """A single nats-server with the shipped accounts.conf (no TLS); yields its port."""
    port = free_port()
    process = start_server(single_node_config(tmp_path, port), tmp_path / "nats.log", port)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


class Connection:
    """A nats-py connection that records the server's asynchronous errors (violations)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self, url: str, **kwargs: object) -> Client:
        """Connect once (no reconnects: a refused connection fails the test at once)."""

        async def record(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(
            url, error_cb=record, allow_reconnect=False, connect_timeout=3, **kwargs
        )
        return self.nc

    def violations(self) -> str:
        """All errors the server reported, lower-cased."""
        return "\n".join(self.errors).lower()


@pytest.fixture
async def connections() -> AsyncIterator[list[Connection]]:
    """Connections closed at the end of the test."""
    opened: list[Connection] = []
    yield opened
    for conn in opened:
        if conn.nc is not None and not conn.nc.is_closed:
            await conn.nc.close()


async def as_user(connections: list[Connection], user: str, port: int) -> tuple[Connection, Client]:
    """A connection as one of the accounts.conf users (on its own inbox prefix, as the
    services connect)."""
    conn = Connection()
    connections.append(conn)
    return conn, await conn.connect(user_url(user, port), inbox_prefix=inbox_prefix(user))


async def wait_for_violation(conn: Connection, subject: str) -> None:
    """Until the server reported a publish violation on ``subject`` (2 s at most)."""
    for _ in range(40):
        if (
            "permissions violation for publish" in conn.violations()
            and subject in conn.violations()
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no publish violation for {subject}: {conn.errors}")


async def test_intake_publishes_events_but_not_rollups(
    auth_server: int, connections: list[Connection]
) -> None:
    """intake declares the stream and stores an event; a rollup publish is refused."""
    conn, nc = await as_user(connections, "intake", auth_server)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="ZHIBAO_EVENTS", subjects=["zhibao.events.>"]))
    ack = await js.publish(EVENT, b"{}", headers={"Nats-Msg-Id": "gate-3/1"})
    assert ack.stream == "ZHIBAO_EVENTS" and ack.seq == 1

    await nc.publish("zhibao.rollups.community.640106001001", b"{}")
    await wait_for_violation(conn, "zhibao.rollups.community.640106001001")


async def test_aggregator_reads_events_publishes_rollups_but_cannot_publish_events(
    auth_server: int, connections: list[Connection]
) -> None:
    """The aggregator's consumer works; its event publish never reaches the stream."""
    _, intake = await as_user(connections, "intake", auth_server)
    intake_js = intake.jetstream()
    await intake_js.add_stream(StreamConfig(name="ZHIBAO_EVENTS", subjects=["zhibao.events.>"]))
    await intake_js.publish(EVENT, b'{"n": 1}')

    dashboard_conn, dashboard = await as_user(connections, "dashboard", auth_server)
    rollups = await dashboard.subscribe("zhibao.rollups.>")

    conn, nc = await as_user(connections, "aggregator", auth_server)
    js = nc.jetstream()
    await js.add_consumer(
        "ZHIBAO_EVENTS",
        ConsumerConfig(
            durable_name="aggregator", name="aggregator", filter_subjects=["zhibao.events.640106.>"]
        ),
    )
    sub = await js.pull_subscribe_bind(durable="aggregator", stream="ZHIBAO_EVENTS")
    [message] = await sub.fetch(1, timeout=5)
    assert message.data == b'{"n": 1}'
    await message.ack_sync(timeout=5)

    await nc.publish("zhibao.rollups.community.640106001001", b"rollup")
    assert (await rollups.next_msg(timeout=5)).data == b"rollup"

    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await js.publish(EVENT, b"forged", timeout=1)
    await wait_for_violation(conn, EVENT)
    info = await intake_js.stream_info("ZHIBAO_EVENTS")
    assert info.state.messages == 1
    assert dashboard_conn.errors == []


async def test_dashboard_reads_but_publishes_nothing(
    auth_server: int, connections: list[Connection]
) -> None:
    """The dashboard user can neither forge an alert nor submit through intake."""
    conn, nc = await as_user(connections, "dashboard", auth_server)
    await nc.subscribe("zhibao.alerts.>")
    await nc.publish("zhibao.alerts.critical.640106", b"{}")
    await wait_for_violation(conn, "zhibao.alerts.critical.640106")


async def test_alerts_cannot_publish_rollups(
    auth_server: int, connections: list[Connection]
) -> None:
    """alerts publishes alerts, not rollups."""
    conn, nc = await as_user(connections, "alerts", auth_server)
    await nc.publish("zhibao.alerts.critical.640106", b"{}")
    await nc.publish("zhibao.rollups.district.640106", b"{}")
    await wait_for_violation(conn, "zhibao.rollups.district.640106")
    assert "zhibao.alerts.critical" not in conn.violations()


async def test_a_wrong_password_is_refused(auth_server: int) -> None:
    """Authentication is on: a wrong password does not connect."""
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(
            f"nats://intake:wrong-password@127.0.0.1:{auth_server}",
            allow_reconnect=False,
            connect_timeout=3,
            max_reconnect_attempts=0,
        )


async def test_tls_with_the_dev_ca_connects_and_plain_text_does_not(
    tmp_path: Path, dev_certs: Path, connections: list[Connection]
) -> None:
    """With the certificates from make-certs.sh, a client verifying the CA connects over TLS;
    a client without TLS is refused."""
    port = free_port()
    config = single_node_config(tmp_path, port, certs=dev_certs)
    process = start_server(config, tmp_path / "nats.log", port)
    try:
        context = ssl.create_default_context(cafile=str(dev_certs / "ca.pem"))
        conn = Connection()
        connections.append(conn)
        nc = await conn.connect(user_url("intake", port, scheme="tls"), tls=context)
        assert nc.is_connected
        await nc.publish("zhibao.events.640106.640106001001.screening", b"{}")
        await nc.flush(timeout=5)

        with pytest.raises((nats.errors.Error, OSError, ssl.SSLError)):
            plain = await nats.connect(
                user_url("intake", port), allow_reconnect=False, connect_timeout=3
            )
            await plain.close()

        untrusting = ssl.create_default_context()
        with pytest.raises((nats.errors.Error, OSError, ssl.SSLError)):
            other = await nats.connect(
                user_url("intake", port, scheme="tls"),
                tls=untrusting,
                allow_reconnect=False,
                connect_timeout=3,
            )
            await other.close()
    finally:
        process.terminate()
        process.wait(10)
