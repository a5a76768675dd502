"""The audit trail gets every record to JetStream, however large the submissions were."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from tests.intake.test_nats_request_reply import _request
from tests.support.events import COMMUNITY_A, screening
from tests.support.logs import captured_logs
from zhibao_intake.audit import AuditTrail, Caller, audit_record
from zhibao_intake.bootstrap import create_app
from zhibao_intake.gateway import Answer, Gateway
from zhibao_intake.settings import IntakeSettings
from zhibao_shared import audit
from zhibao_shared.background import cancel_and_wait
from zhibao_shared.broker import audit_stream_config, ensure_stream, make_broker, stop_broker
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import AUDIT_ALL, AUDIT_STREAM
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration


def record(n: int, events: int) -> dict[str, Any]:
    """A submission's record; a batch of 100 events makes about 10 KB."""
    lines = [{"status": "accepted", "id": f"ev-{n}-{i}", "source": "gate/7"} for i in range(events)]
    return {"token": "t1", "status": 202, "n": n, "events": lines}


async def read_trail(url: str) -> tuple[int, list[dict[str, Any]]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        count = (await js.stream_info(AUDIT_STREAM)).state.messages
        if count == 0:
            return 0, []
        config = ConsumerConfig(ack_policy=AckPolicy.NONE)
        sub = await js.pull_subscribe(AUDIT_ALL, stream=AUDIT_STREAM, config=config)
        messages = await sub.fetch(count, timeout=5)
        return count, [json.loads(line) for m in messages for line in m.data.splitlines()]
    finally:
        await client.close()


@asynccontextmanager
async def connected_trail(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[AuditTrail]:
    """Intake's audit trail on a connected broker with the audit stream; stopped on exit."""
    settings = IntakeSettings(nats_url=nats_server.url, data_dir=tmp_path)
    broker = make_broker(settings, name="audit-test")
    await broker.connect()
    try:
        await ensure_stream(broker.connection.jetstream(), audit_stream_config(settings))
        yield AuditTrail(broker, 5.0)
    finally:
        await stop_broker(broker)


@contextmanager
def stored_then(trail: AuditTrail, raised: BaseException) -> Iterator[None]:
    """Inside: each of the trail's publishes reaches the stream, and then ``raised`` comes
    instead of its acknowledgement."""
    publish = trail._publish

    async def stored_then_raise(message: Any) -> None:
        await publish(message)
        raise raised

    trail._publish = stored_then_raise  # type: ignore[method-assign]
    try:
        yield
    finally:
        trail._publish = publish  # type: ignore[method-assign]


async def test_records_beyond_one_message_are_all_published_in_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """600 records of 100-event batches are ~6 MB: more than one message may carry."""
    async with connected_trail(nats_server, tmp_path) as trail:
        for n in range(600):
            trail.append(record(n, 100))
        published = await trail.flush()
    messages, records = await read_trail(nats_server.url)
    assert published
    assert [r["n"] for r in records] == list(range(600))
    assert messages > 1, "split into several messages under the maximum payload"


async def test_a_record_too_large_for_any_message_goes_to_the_log_and_the_rest_on(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected_trail(nats_server, tmp_path) as trail:
        trail.append(record(0, 1))
        trail.append(record(1, 20_000))  # about 2 MB, over the 1 MB maximum payload
        trail.append(record(2, 1))
        logs = captured_logs(audit, monkeypatch)
        published = await trail.flush()
    _messages, records = await read_trail(nats_server.url)
    assert published
    assert [r["n"] for r in records] == [0, 2]
    [logged] = [entry for entry in logs if entry["event"] == "audit_record_too_large"]
    assert json.loads(logged["record"])["n"] == 1


async def test_a_flush_cancelled_after_its_message_was_stored_does_not_store_it_twice(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with connected_trail(nats_server, tmp_path) as trail:
        for n in range(3):
            trail.append(record(n, 1))
        # the stop came while the acknowledgement was on its way
        with stored_then(trail, asyncio.CancelledError()), pytest.raises(asyncio.CancelledError):
            await trail.flush()
        assert await trail.flush()
    _messages, records = await read_trail(nats_server.url)
    assert [r["n"] for r in records] == [0, 1, 2]


async def test_records_whose_acknowledgement_timed_out_are_not_stored_twice(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """NATS stalled: the stream stored a message but its acknowledgement came too late.
    The records were published again and stored twice (each copy a row of the
    aggregator's trail, a refusal counted twice in the scorecard); the resend now has
    the first attempt's message id, and the stream drops it."""
    async with connected_trail(nats_server, tmp_path) as trail:
        for n in range(3):
            trail.append(record(n, 1))
        with stored_then(trail, TimeoutError("nats: timeout")):
            assert not await trail.flush(), "kept for a retry"
        trail.append(record(3, 1))  # a record appended meanwhile goes out too, once
        assert await trail.flush()
    _messages, records = await read_trail(nats_server.url)
    assert [r["n"] for r in records] == [0, 1, 2, 3]


async def test_records_beyond_the_buffer_go_to_the_log_while_publishes_fail(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NATS connected but refusing (stalled, or the audit stream full): the records packed
    for a resend count against ``max_buffer`` as the buffered ones do, so memory stays
    bounded and the rest goes to the log (packed messages escaped the count: 2,000
    records held with a bound of 100)."""
    settings = IntakeSettings(nats_url=nats_server.url, data_dir=tmp_path)
    broker = make_broker(settings, name="audit-test")
    await broker.connect()
    try:
        trail = AuditTrail(broker, 5.0, max_buffer=100)

        async def refused(message: Any) -> None:
            raise TimeoutError("nats: timeout")

        trail._publish = refused  # type: ignore[method-assign]
        logs = captured_logs(audit, monkeypatch)
        for round_ in range(20):
            for n in range(100):
                trail.append(record(100 * round_ + n, 1))
            assert not await trail.flush()
    finally:
        await stop_broker(broker)
    held = len(trail._buffer) + sum(m.records for m in trail._unsent)
    assert held == 100
    assert sum(entry["event"] == "audit_buffer_full" for entry in logs) == 1_900


async def test_records_a_stopping_service_cannot_publish_go_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = IntakeSettings(nats_url="nats://127.0.0.1:1", data_dir=tmp_path)
    trail = AuditTrail(make_broker(settings, name="audit-test"), 5.0)  # never connected
    for n in range(3):
        trail.append(record(n, 1))
    running = asyncio.create_task(trail.run())
    await asyncio.sleep(0)
    logs = captured_logs(audit, monkeypatch)
    await cancel_and_wait([running])
    kept = [json.loads(e["record"]) for e in logs if e["event"] == "audit_record_not_published"]
    assert [r["n"] for r in kept] == [0, 1, 2]


async def test_a_nats_submission_answered_during_the_stop_is_in_the_trail(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(nats_url=nats_server.url, data_dir=tmp_path)
    app = create_app(settings)
    gateway: Gateway = app.state.intake.gateway
    intake = app.state.intake
    token = TokenStore.configured(settings).create(scopes=[COMMUNITY_A], role=Role.REPORT)[1]
    entered, released = asyncio.Event(), asyncio.Event()
    submit = gateway.submit

    async def held(caller: Caller, body: bytes, content_type: str | None) -> Answer:
        entered.set()
        await released.wait()
        return await submit(caller, body, content_type)

    gateway.submit = held  # type: ignore[method-assign]
    event = screening()
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    await intake.streams_ready.wait()
    answering = asyncio.create_task(_request(nats_server.url, event, token))
    await entered.wait()
    stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
    await asyncio.sleep(1.0)  # SIGTERM while the submission is being handled
    released.set()
    assert (await answering)["status"] == 202
    await stopping

    _messages, records = await read_trail(nats_server.url)
    audited = [e["id"] for r in records for e in r.get("events", [])]
    assert event["id"] in audited


def test_a_refused_events_field_too_long_to_repeat_is_left_out_of_its_audit_line() -> None:
    item = {"subject": "640106001001", "type": "x" * 100, "time": "t" * 65, "id": "e1"}
    result = {"index": 0, "status": "rejected", "code": "invalid", "id": "e1"}
    record = audit_record(Caller("http", None, None), [result], status=422, items=[item])
    [line] = record["events"]
    assert line == {"status": "rejected", "code": "invalid", "id": "e1", "subject": item["subject"]}
