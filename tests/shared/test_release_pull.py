"""A stopping consumer hands back what the server delivered that no fetch took (real
nats-server): the next consumer gets it at once, not after ``ack_wait``."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from zhibao_shared.broker import release_pull
from zhibao_shared.natsserver import NatsServer

STREAM = "RELEASE"
DURABLE = "release-test"
#: Far longer than the test may take: the next fetch must not depend on a redelivery.
ACK_WAIT_S = 600.0
SENT = 10


async def test_messages_delivered_after_the_last_fetch_go_to_the_next_consumer_at_once(
    nats_server: NatsServer,
) -> None:
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await js.add_stream(name=STREAM, subjects=["release.>"])
        await js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S
            ),
        )
        for n in range(SENT):
            await js.publish(f"release.{n}", b"%d" % n, stream=STREAM)
        stopping = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
        # What a fetch that returned at its timeout leaves behind: a pull request's
        # messages arriving after it (nats-py keeps them for the next fetch).
        await client.publish(
            stopping._nms, json.dumps({"batch": SENT, "no_wait": True}).encode(), stopping._deliver
        )
        async with asyncio.timeout(10):
            while stopping.pending_msgs < SENT:
                await client.flush()

        assert await release_pull(stopping) == SENT

        following = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
        messages: list[Msg] = []
        try:
            # a fetch returns what is deliverable when it asks: the server may still be
            # taking back the rest, so ask until all came (each well before ack_wait)
            while len(messages) < SENT:
                messages += await following.fetch(SENT - len(messages), timeout=10)
        except nats.errors.TimeoutError:
            pytest.fail("the messages in the stopped consumer's hands wait for ack_wait")
        assert sorted(m.data for m in messages) == sorted(b"%d" % n for n in range(SENT))
    finally:
        await client.close()
