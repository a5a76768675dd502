"""Submissions that arrive together share one bundle; each still gets its own answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.events import COMMUNITY_A, screening
from tests.support.process import frozen
from tests.support.stream import stored_messages_async
from zhibao_intake.domain.admission import Admitted, Reporter, admit
from zhibao_intake.domain.pseudonym import Pseudonymiser
from zhibao_intake.domain.recently_stored import RecentlyStored
from zhibao_intake.publisher import BusUnavailable, JetStreamPublisher, PublishOutcome, messages
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.broker import ensure_stream, events_stream_config, make_broker, stop_broker
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role, TokenStore


def admitted_events(tmp_path: Path, count: int) -> list[Admitted]:
    token, _secret = TokenStore.in_data_dir(tmp_path).create(scopes=["640106"], role=Role.REPORT)
    reporter = Reporter(token=token, received_at=datetime.now(UTC))
    registry, pseudonymiser = load_registry(), Pseudonymiser(b"k" * 32)
    events = [
        admit(
            n,
            screening(COMMUNITY_A),
            reporter=reporter,
            registry=registry,
            pseudonymiser=pseudonymiser,
            zone=ZoneInfo("Asia/Shanghai"),
        )
        for n in range(count)
    ]
    assert all(isinstance(e, Admitted) for e in events)
    return [e for e in events if isinstance(e, Admitted)]


@asynccontextmanager
async def publisher_on(
    nats_server: NatsServer, tmp_path: Path, timeout_s: float
) -> AsyncIterator[JetStreamPublisher]:
    """Intake's publisher on a connected broker with the events stream (stopped on exit)."""
    settings = IntakeSettings(nats_url=nats_server.url, data_dir=tmp_path)
    broker = make_broker(settings, name="test")
    await broker.connect()
    try:
        await ensure_stream(broker.connection.jetstream(), events_stream_config(settings))
        yield JetStreamPublisher(broker, timeout_s, 200, RecentlyStored(1000))
    finally:
        await stop_broker(broker)


async def test_single_events_submitted_in_the_same_turn_go_out_as_one_bundle(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async with publisher_on(nats_server, tmp_path, 5.0) as publisher:
        events = admitted_events(tmp_path, 10)
        answers = await asyncio.gather(*(publisher.publish([e]) for e in events))
        assert answers == [[False]] * 10, "each submission: stored, not a duplicate"
        again = await asyncio.gather(*(publisher.publish([e]) for e in events[:3]))
        assert again == [[True]] * 3, "a resent event is answered as a duplicate"
        [(subject, payload, _headers)] = await stored_messages_async(nats_server.url)
    assert subject == "zhibao.events.640106.bundle"
    assert [e["id"] for e in json.loads(payload)] == [e.id for e in events]


async def test_submissions_arriving_while_a_publish_waits_go_out_together_after_it(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Group commit: while one publish waits for JetStream's acknowledgement, single
    events submitted in later event-loop turns gather and then go out as one bundle
    (publishing each turn's events at once sent six messages here)."""
    assert nats_server.pid is not None
    async with publisher_on(nats_server, tmp_path, 30.0) as publisher:
        events = admitted_events(tmp_path, 6)
        with frozen(nats_server.pid):  # the first publish cannot be answered
            submissions = [asyncio.create_task(publisher.publish([events[0]]))]
            for event in events[1:]:
                await asyncio.sleep(0.02)  # each submission in a turn of its own
                submissions.append(asyncio.create_task(publisher.publish([event])))
            await asyncio.sleep(0.02)
        answers = await asyncio.gather(*submissions)
        stored = await stored_messages_async(nats_server.url)
    assert answers == [[False]] * 6, "each submission: stored, not a duplicate"
    assert [subject.endswith(".bundle") for subject, _, _ in stored] == [False, True]
    assert [e["id"] for e in json.loads(stored[1][1])] == [e.id for e in events[1:]]


async def test_a_submission_behind_a_stalled_publish_waits_one_timeout_not_two(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """With NATS stalled, a submission that arrives while a publish waits is answered
    "unavailable" when its own timeout ends. (It used to wait for the publish in flight
    to time out and then for a publish of its own: two timeouts, 3.5 s here, past the
    client's patience and the Retry-After it is promised.)"""
    timeout_s = 2.0
    assert nats_server.pid is not None
    loop = asyncio.get_running_loop()
    async with publisher_on(nats_server, tmp_path, timeout_s) as publisher:

        async def timed(event: Admitted) -> tuple[list[PublishOutcome], float]:
            started = loop.time()
            outcome = await publisher.publish([event])
            return outcome, loop.time() - started

        first, second = admitted_events(tmp_path, 2)
        with frozen(nats_server.pid):
            in_flight = asyncio.create_task(timed(first))
            await asyncio.sleep(0.5)
            (outcome, waited), (first_outcome, _) = await asyncio.gather(timed(second), in_flight)
    assert [type(o) for o in first_outcome + outcome] == [BusUnavailable, BusUnavailable]
    assert waited < timeout_s + 0.75, f"answered after {waited:.2f} s, timeout {timeout_s} s"


async def test_a_submission_that_just_arrived_keeps_its_own_time_behind_expired_ones(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """NATS stalled for longer than one timeout: a submission queued early is answered
    unavailable at its own deadline, while one that arrived later is still published and
    stored once NATS answers. (All of a publish's submissions were given what was left of
    the earliest one's time, so the later one was answered unavailable with most of its
    time left.)"""
    assert nats_server.pid is not None
    async with publisher_on(nats_server, tmp_path, 2.0) as publisher:
        in_flight, early, late = admitted_events(tmp_path, 3)
        with frozen(nats_server.pid):
            first = asyncio.create_task(publisher.publish([in_flight]))
            await asyncio.sleep(0.05)
            queued_early = asyncio.create_task(publisher.publish([early]))
            await asyncio.sleep(1.55)
            queued_late = asyncio.create_task(publisher.publish([late]))
            await asyncio.sleep(1.0)  # past the early one's deadline, well before the late one's
        answers = await asyncio.gather(first, queued_early, queued_late)
    assert [type(outcome) for [outcome] in answers[:2]] == [BusUnavailable, BusUnavailable]
    assert answers[2] == [False], "the late one was stored"


def test_bundles_are_split_by_bytes_as_well_as_by_events(tmp_path: Path) -> None:
    events = admitted_events(tmp_path, 7)
    size = max(len(e.payload) for e in events)
    out = messages(events, bundle_events=5, bundle_bytes=3 * size + 8)
    assert [len(m.members) for m in out] == [3, 3, 1]
    assert [m for msg in out for m in msg.members] == list(range(7)), "order kept"
    assert all(len(m.payload) <= 3 * size + 8 for m in out)
    assert [len(m.members) for m in messages(events, 5, 1 << 20)] == [5, 2]
