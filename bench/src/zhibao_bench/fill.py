"""A history on the events stream, published straight into JetStream as the operator:
the batched phase's fill up to a million events, the mixed phase's history before its load.

Quicker than POSTing them, and not held to intake's 400-day horizon (checked
when an event arrives; the consumers take what is on the stream, as a
rebuild replays it). Events go in bundles as intake publishes a batch,
attributed and with the person pseudonymised; every bundle goes on one
district's bundle subject (the services consume the whole stream, so the
subject does not change what they count). The same events (same seeds) fill
the plain baseline's table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import nats

from zhibao_bench.workload import Truth, Workload, build_workload
from zhibao_shared.events import bundle_payload, event_identity
from zhibao_shared.subjects import EVENTS_STREAM, bundle_subject

DISTRICT = "640106"
#: Events generated at a time (the fill never holds a million events in memory).
CHUNK = 100_000


def chunks(count: int, days: float) -> Iterator[Workload]:
    """The fill's events, ``CHUNK`` at a time (deterministic but for times)."""
    for k, start in enumerate(range(0, count, CHUNK)):
        yield build_workload(min(CHUNK, count - start), seed=99 + k, tag=f"direct{k}", days=days)


def published(event: dict[str, Any]) -> dict[str, Any]:
    """The event as intake publishes it (attributed, person pseudonymised)."""
    event = {**event, "reporter": "bench", "receivedat": datetime.now(UTC).isoformat()}
    if "person" in event["data"]:
        pid = hashlib.sha256(event["id"].encode()).hexdigest()[:32]
        event["data"] = {**event["data"], "person": {"pid": pid}}
    return event


async def publish_direct(url: str, events: list[dict[str, Any]], per_message: int) -> None:
    """Publish ``events`` in bundles of ``per_message`` to the events stream."""
    client = await nats.connect(url)
    try:
        js = client.jetstream(publish_async_max_pending=20_000)
        pending = []
        for start in range(0, len(events), per_message):
            run = [published(event) for event in events[start : start + per_message]]
            identities = json.dumps(
                [event_identity(e["subject"], e["source"], e["id"]) for e in run]
            ).encode()
            pending.append(
                await js.publish_async(
                    bundle_subject(DISTRICT),
                    bundle_payload([json.dumps(e).encode() for e in run]),
                    stream=EVENTS_STREAM,
                    headers={"Nats-Msg-Id": f"bundle {hashlib.sha256(identities).hexdigest()}"},
                )
            )
            if len(pending) >= 1_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await client.close()


def publish_history(url: str, count: int, days: float, per_message: int) -> Truth:
    """Publish ``count`` events spread over the last ``days`` days (:func:`chunks`) in
    bundles of ``per_message``; their truth."""
    truth: Truth = Counter()
    for workload in chunks(max(0, count), days):
        asyncio.run(publish_direct(url, workload.events, per_message))
        truth.update(workload.truth)
    return truth
