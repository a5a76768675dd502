"""How full the JetStream streams are, as Prometheus gauges (``zhibao_stream_*``).

Intake watches the streams it writes, so the shipped rule ``ZhibaoStreamFilling``
warns well before a stream reaches its limit (the events stream then refuses new
events: intake answers 503 and community systems keep them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from prometheus_client import Gauge

log = structlog.get_logger(__name__)

STREAM_BYTES = Gauge("zhibao_stream_bytes", "Bytes stored in a JetStream stream", ["stream"])
STREAM_MAX_BYTES = Gauge(
    "zhibao_stream_max_bytes", "A JetStream stream's byte limit (+Inf: none)", ["stream"]
)
STREAM_MESSAGES = Gauge(
    "zhibao_stream_messages", "Messages stored in a JetStream stream", ["stream"]
)


async def record_usage(js: JetStreamContext, stream: str) -> None:
    """Read one stream's state and limit into the gauges."""
    info = await js.stream_info(stream)
    limit = info.config.max_bytes
    STREAM_BYTES.labels(stream).set(info.state.bytes)
    STREAM_MESSAGES.labels(stream).set(info.state.messages)
    STREAM_MAX_BYTES.labels(stream).set(limit if limit and limit > 0 else math.inf)


async def watch_streams(js: JetStreamContext, streams: Sequence[str], interval_s: float) -> None:
    """Refresh the gauges of ``streams`` every ``interval_s`` seconds, for ever."""
    while True:
        for stream in streams:
            try:
                await record_usage(js, stream)
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                log.warning("stream_usage_unknown", stream=stream, error=str(exc))
        await asyncio.sleep(interval_s)
