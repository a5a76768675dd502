"""The shipped 3-node cluster configs form a cluster whose R3 stream survives a killed node."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from tests.deploy.cluster import LoopbackCluster
from tests.deploy.support import password
from zhibao_shared.bus_access import inbox_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(tmp_path: Path, dev_certs: Path) -> Iterator[LoopbackCluster]:
    """The three nodes, started and formed."""
    nodes = LoopbackCluster(tmp_path, dev_certs)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


async def test_r3_stream_keeps_accepting_and_answering_after_a_node_is_killed(
    cluster: LoopbackCluster, dev_certs: Path
) -> None:
    """Intake's stream with 3 replicas: every acked event is still there after a node dies,
    and new events are still acked (2 of 3 is a quorum)."""
    tls = ssl.create_default_context(cafile=str(dev_certs / "ca.pem"))
    nc = await nats.connect(
        cluster.client_urls("intake", password("intake")),
        tls=tls,
        inbox_prefix=inbox_prefix("intake"),  # the intake user's replies come back here
        dont_randomize=True,  # connected to node 1, the one that is killed
        reconnect_time_wait=0.2,
        max_reconnect_attempts=-1,
        connect_timeout=3,
    )
    try:
        js = nc.jetstream(timeout=5)
        await js.add_stream(
            StreamConfig(name="ZHIBAO_EVENTS", subjects=["zhibao.events.>"], num_replicas=3)
        )
        subject = "zhibao.events.640106.640106001001.screening"
        for n in range(10):
            await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"before-{n}"})
        info = await js.stream_info("ZHIBAO_EVENTS")
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2

        cluster.kill(1)

        deadline = time.monotonic() + 30
        acked = 0
        while acked < 10 and time.monotonic() < deadline:
            try:
                await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"after-{acked}"})
                acked += 1
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.2)  # reconnecting, or a new stream leader being elected
        assert acked == 10, "the stream did not accept events after a node was killed"
        info = await js.stream_info("ZHIBAO_EVENTS")
        assert info.state.messages == 20
        assert nc.connected_url is not None and nc.connected_url.port != cluster.ports[0].client
    finally:
        await nc.close()


def test_the_cluster_does_not_advertise_node_addresses(cluster: LoopbackCluster) -> None:
    """no_advertise: clients keep the URLs they were given (with their credentials)
    instead of being told node addresses they would reconnect to unauthenticated."""
    varz = cluster.monitor(1, "/varz")
    assert not varz.get("connect_urls")
    assert varz.get("tls_required") is True


def test_a_port_taken_after_it_was_picked_starts_the_cluster_on_new_ports(
    tmp_path: Path, dev_certs: Path
) -> None:
    """Free ports are picked first and bound when the nodes start; another process taking
    one in between (seen in CI: "address already in use" on a route port) must not fail
    the tests that need a cluster."""
    nodes = LoopbackCluster(tmp_path, dev_certs)
    taken = nodes.ports[2].route
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            nodes.start()
            assert nodes.ports[2].route != taken
            assert all(nodes.monitor(n, "/healthz").get("status") == "ok" for n in (1, 2, 3))
        finally:
            nodes.stop()
