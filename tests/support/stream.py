"""Reading back what is in the events stream (raw messages, or the events they carry) and
how a stream is configured."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from zhibao_shared.subjects import EVENTS_ALL, EVENTS_STREAM


async def stored_messages_async(url: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every message in the events stream (from a running event loop)."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(EVENTS_STREAM)
        count = info.state.messages
        if count == 0:
            return []
        # No acks: an explicit-ack consumer stops delivering at max_ack_pending (1,000)
        # unacked messages, and a fetch beyond that waits in vain.
        config = ConsumerConfig(ack_policy=AckPolicy.NONE)
        sub = await js.pull_subscribe(EVENTS_ALL, stream=EVENTS_STREAM, config=config)
        messages: list[Msg] = []
        while len(messages) < count:
            # Bundles are large messages: fetch in small pulls, not one pull for the stream.
            messages += await sub.fetch(min(100, count - len(messages)), timeout=10)
        return [(m.subject, m.data, dict(m.headers or {})) for m in messages]
    finally:
        await client.close()


def stored_messages(url: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every message in the events stream: subject, payload, headers."""
    return asyncio.run(stored_messages_async(url))


def stored_events(url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the events stream, bundles unpacked: the message's subject, the event."""
    events: list[tuple[str, dict[str, Any]]] = []
    for subject, payload, _headers in stored_messages(url):
        document = json.loads(payload)
        events += [(subject, e) for e in (document if isinstance(document, list) else [document])]
    return events


def stream_config(url: str, stream: str) -> StreamConfig:
    """A stream's configuration as the server holds it."""

    async def read() -> StreamConfig:
        client = await nats.connect(url)
        try:
            return (await client.jetstream().stream_info(stream)).config
        finally:
            await client.close()

    return asyncio.run(read())
