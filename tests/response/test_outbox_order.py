"""A task's messages reach the stream in the order they were written, even when the
first attempt to publish the earlier one fails and is retried.

The bus is real; the one failure is injected into the first publish of the task's
``issued`` message (refused before it reaches the server, so it is not stored).
"""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from tests.response.conftest import STORE_NOW, done_result
from tests.support.events import COMMUNITY_A
from zhibao_response.outbox import OutboxPublisher
from zhibao_response.settings import ResponseSettings
from zhibao_response.store import Actor, NewTask, TaskStore
from zhibao_shared.broker import declare_stream, tasks_stream_config
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import TASKS_STREAM

ACTOR = Actor("district", "district-token")


async def test_a_task_issued_then_done_is_on_the_stream_in_that_order_after_a_retry(
    sqlite_store: TaskStore, nats_server: NatsServer
) -> None:
    store = sqlite_store
    due = STORE_NOW + timedelta(hours=24)
    first, other = "a" * 32, "b" * 32
    await store.issue([NewTask(first, COMMUNITY_A, "verify_companion", due)], ACTOR)
    await store.issue([NewTask(other, COMMUNITY_A, "verify_companion", due)], ACTOR)
    assert (await store.apply_results([done_result(first)])).changed == 1
    [issued, _, _] = await store.pending_messages(10)

    bus = await nats.connect(nats_server.url)
    js = bus.jetstream()
    await declare_stream(js, tasks_stream_config(ResponseSettings(nats_url=nats_server.url)))
    refused: list[str] = []

    async def publish(subject: str, body: bytes, msg_id: str) -> None:
        if msg_id == issued.msg_id and not refused:
            refused.append(msg_id)
            raise TimeoutError("no acknowledgement in time")
        await js.publish(subject, body, stream=TASKS_STREAM, headers={"Nats-Msg-Id": msg_id})

    outbox = OutboxPublisher(store, publish)
    try:
        with pytest.raises(TimeoutError):
            await outbox.flush()
        assert await outbox.flush() == 3
        info = await js.stream_info(TASKS_STREAM)
        stored = [
            json.loads((await js.get_msg(TASKS_STREAM, seq)).data or b"{}")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await bus.close()
    assert refused == [issued.msg_id]
    of_first = [(m["event"], m["state"]) for m in stored if m["task"] == first]
    assert of_first == [("task_issued", "issued"), ("task_changed", "done")]
    assert sum(m["task"] == other for m in stored) == 1, "stored once, resent or not"
