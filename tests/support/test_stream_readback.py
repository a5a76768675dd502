"""The stream read-back the end-to-end tests rely on returns every stored message."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig

from tests.support.stream import stored_messages_async
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject

pytestmark = pytest.mark.integration


async def test_more_messages_than_an_ack_window_are_all_read_back(
    nats_server: NatsServer,
) -> None:
    """Beyond max_ack_pending (1,000) unacked messages a fetch used to wait in vain."""
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["zhibao.events.>"]))
        subject = event_subject("640106001001", "screening")
        acks = [await js.publish_async(subject, str(n).encode()) for n in range(1_500)]
        await asyncio.gather(*acks)
    finally:
        await client.close()

    stored = await stored_messages_async(nats_server.url)

    assert [payload for _subject, payload, _headers in stored] == [
        str(n).encode() for n in range(1_500)
    ]
