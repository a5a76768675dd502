"""A service stops within its shutdown budget even when NATS no longer answers."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsBroker

from tests.support.process import frozen
from zhibao_shared.broker import stop_broker
from zhibao_shared.natsserver import NatsServer


async def test_stopping_with_a_hung_server_gives_up_draining_after_the_bound(
    nats_server: NatsServer,
) -> None:
    """nats-py's drain waits (10 s here) for a server that stopped answering, on top of
    a service's outbox flush: the response harness's 30 s teardown failed twice in CI
    runs. The bounded stop closes the connection after ``within_s`` instead (the old
    stop fails this test: it returned only after the drain's own 10 s)."""
    broker = NatsBroker(nats_server.url)

    @broker.subscriber("zhibao.test.hung")
    async def never(_body: str) -> None: ...

    await broker.start()
    assert nats_server.pid is not None
    with frozen(nats_server.pid):
        await asyncio.wait_for(stop_broker(broker, within_s=1.0), timeout=6)
