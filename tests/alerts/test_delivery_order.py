"""Delivery order: a confirmed case is not paged after a burst of warnings."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed, fever
from tests.alerts.test_lifecycle import World, oncall
from tests.support.webhook import Receiver
from zhibao_alerts.tables import alerts, notifications
from zhibao_shared import background
from zhibao_shared.background import cancel_and_wait
from zhibao_shared.consumer import Delivery


async def test_a_critical_alert_goes_out_in_the_first_pass_behind_a_backlog_of_warnings(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """More warnings are due than one pass sends (200); the confirmed case still goes first."""
    at_once = oncall(webhook).model_copy(update={"group_wait_seconds": 0})
    world = World(engine, clock, webhook, rota=at_once)
    apply, dispatcher = world.apply, world.dispatcher
    fevers = [fever(building=str(b)) for b in range(250) for _ in range(3)]
    await apply([Delivery(event, "s", n, 1) for n, event in enumerate(fevers)])
    await apply([Delivery(confirmed(), "s", len(fevers), 1)])

    await dispatcher.tick()

    paged = [
        (body["groupLabels"]["alertname"], len(body["alerts"])) for _path, body in webhook.received
    ]
    assert ("immediate_confirmed", 1) in paged
    clusters = sum(n for name, n in paged if name == "fever_cluster")
    assert 0 < clusters < 250, "the warnings did not all fit one pass"


def _not_confirmed(alert_name: str) -> bool:
    return alert_name != "immediate_confirmed"


async def test_a_stop_lets_the_pass_for_a_new_alert_record_what_it_sent(
    engine: AsyncEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while both passes wait on the receiver: however often the stop repeats its
    cancellation, the second pass records the page it sent (else it goes out again)."""
    monkeypatch.setattr(background, "RECANCEL_AFTER_S", 0.05)
    monkeypatch.setattr(background, "CANCEL_BOUND_S", 60.0)  # a slow machine still waits
    with stalling_receiver(holds=lambda _name: True) as (url, arrived, release):
        receiver = Receiver(url=url)
        rota = oncall(receiver).model_copy(update={"group_wait_seconds": 0})
        world = World(engine, clock, receiver, rota=rota)
        # raised before the loop starts, so its own pass is the one held by the cluster's
        # page (else a pass wake() started may hold it, and the loop takes the case's)
        await world.apply([Delivery(fever(building="3"), "s", n, 1) for n in range(3)])
        running = asyncio.create_task(world.dispatcher.run())
        await until(lambda: "fever_cluster" in arrived)
        await world.apply([Delivery(confirmed(), "s", 3, 1)])  # wakes a second pass
        await until(lambda: "immediate_confirmed" in arrived)

        stopping = asyncio.create_task(cancel_and_wait([running]))
        await until(lambda: running.cancelling() > 1)  # cancelled again: the pass goes on
        release.set()
        await stopping
    async with engine.connect() as conn:
        paged = (
            await conn.execute(
                select(notifications.c.status, notifications.c.attempts)
                .join(alerts, alerts.c.id == notifications.c.alert_id)
                .where(alerts.c.rule == "immediate_confirmed", notifications.c.channel == "webhook")
            )
        ).all()
    assert [tuple(row) for row in paged] == [("sent", 1)]


@contextmanager
def stalling_receiver(
    holds: Callable[[str], bool] = _not_confirmed,
) -> Iterator[tuple[str, list[str], threading.Event]]:
    """A webhook that holds the pages ``holds`` names (all but a confirmed case) until
    released.

    Yields its URL, the alert names of the requests as they arrive, and the release.
    """
    arrived: list[str] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            name = body["groupLabels"]["alertname"]
            arrived.append(name)
            if holds(name):
                release.wait(30)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrived, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


async def until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
    """Wait (at most 10 s) until ``condition`` holds; it may be a coroutine function."""
    for _ in range(1000):
        met = condition()
        if met if isinstance(met, bool) else await met:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 10 s")


def _paging(engine: AsyncEngine, clock: Clock, url: str) -> World:
    """A world paging the webhook at ``url`` without a group wait."""
    receiver = Receiver(url=url)
    return World(engine, clock, receiver, rota=oncall(receiver).model_copy(update=AT_ONCE))


async def _a_pass_held_on_a_warning(world: World) -> asyncio.Task[int]:
    """A fever cluster raised and a pass sending it (held by a stalling receiver)."""
    await world.apply([Delivery(fever(building="3"), "s", n, 1) for n in range(3)])
    return asyncio.create_task(world.dispatcher.deliver())


async def test_a_new_critical_alert_is_paged_while_a_pass_waits_on_a_slow_receiver(
    engine: AsyncEngine, clock: Clock
) -> None:
    with stalling_receiver() as (url, arrived, release):
        world = _paging(engine, clock, url)
        apply, dispatcher = world.apply, world.dispatcher
        stalled = await _a_pass_held_on_a_warning(world)
        await until(lambda: "fever_cluster" in arrived)

        await apply([Delivery(confirmed(), "s", 3, 1)])
        await until(lambda: "immediate_confirmed" in arrived)

        assert not stalled.done(), "the warning's pass is still waiting on the receiver"
        held = arrived.count("fever_cluster")
        release.set()
        assert await stalled > 0, "the held pass completes once the receiver answers"
        await dispatcher.deliver()
    assert arrived.count("fever_cluster") == held, "no held page was sent twice"


async def test_a_new_critical_alert_is_paged_while_two_passes_wait_on_warnings(
    engine: AsyncEngine, clock: Clock
) -> None:
    """A storm of warnings keeps the pass in hand and the second pass both sending: a
    confirmed case raised then is paged and recorded at once, in a pass that leaves the
    warning raised with it to the others."""
    with stalling_receiver() as (url, arrived, release):
        world = _paging(engine, clock, url)
        apply, dispatcher = world.apply, world.dispatcher
        stalled = await _a_pass_held_on_a_warning(world)
        await until(lambda: arrived.count("fever_cluster") == 1)
        await apply([Delivery(fever(building="4"), "s", n, 1) for n in range(3, 6)])
        await until(lambda: arrived.count("fever_cluster") == 2)  # the second pass's

        storm = [fever(building="5") for _ in range(3)] + [confirmed()]
        await apply([Delivery(event, "s", 6 + n, 1) for n, event in enumerate(storm)])
        await until(lambda: "immediate_confirmed" in arrived)
        # recorded while the warnings wait: its pass took none of them
        await until(lambda: _all_sent(engine, "immediate_confirmed"))

        assert not stalled.done(), "both warnings' passes still wait on the receiver"
        assert arrived.count("fever_cluster") == 2, "the third warning waits for a pass"
        release.set()
        await stalled
        await dispatcher.deliver()
        dispatcher.stop()
        await dispatcher.run()  # lets the passes wake() started record what they sent
    async with engine.connect() as conn:
        outbox = (await conn.execute(_OUTBOX)).all()
    assert {(row.rule, row.status) for row in outbox} == {
        ("fever_cluster", "sent"),
        ("immediate_confirmed", "sent"),
    }
    assert sorted(arrived) == ["fever_cluster"] * 3 + ["immediate_confirmed"]


async def test_a_new_alert_committed_while_a_pass_takes_its_notifications_is_not_left_behind(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A pass between its query and marking what it took holds the taking lock: a case
    committed then is not in what it took, and goes out in a pass of its own at once
    rather than after everything the pass took."""
    world = World(engine, clock, webhook, rota=oncall(webhook).model_copy(update=AT_ONCE))
    async with world.dispatcher._taking:  # a pass taking its notifications
        await world.apply([Delivery(confirmed(), "s", 1, 1)])
    await until(lambda: _all_sent(engine, "immediate_confirmed"))


async def _all_sent(engine: AsyncEngine, rule: str) -> bool:
    """Whether every notification of ``rule``'s alerts is recorded as sent."""
    async with engine.connect() as conn:
        statuses = (
            await conn.scalars(
                select(notifications.c.status)
                .join(alerts, alerts.c.id == notifications.c.alert_id)
                .where(alerts.c.rule == rule)
            )
        ).all()
    return bool(statuses) and set(statuses) == {"sent"}


async def test_a_stop_records_the_page_under_way_and_hands_back_the_ones_not_started(
    engine: AsyncEngine, clock: Clock
) -> None:
    """Stopped while a page waits on its webhook, with three more queued behind it (two
    alerts, each paged by webhook and on NATS): the first is recorded as sent (not sent
    again after the lease), the others were never sent and are due at once for the next
    instance, which sends each of them once."""
    with stalling_receiver(holds=lambda _name: True) as (url, arrived, release):
        receiver = Receiver(url=url)
        world = World(engine, clock, receiver, rota=oncall(receiver).model_copy(update=AT_ONCE))
        one_at_a_time = world.another_dispatcher(concurrency=1)
        await world.apply([Delivery(fever(building="3"), "s", n, 1) for n in range(3)])
        await world.apply([Delivery(confirmed(), "s", 3, 1)])
        running = asyncio.create_task(one_at_a_time.run())
        await until(lambda: "immediate_confirmed" in arrived)

        one_at_a_time.stop()
        release.set()
        await asyncio.wait_for(running, 10)
        async with engine.connect() as conn:
            outbox = (await conn.execute(_OUTBOX)).all()
        sent = [(row.rule, row.attempts) for row in outbox if row.status == "sent"]
        assert sent == [("immediate_confirmed", 1)], "the page under way is recorded"
        held = [row for row in outbox if row.status != "sent"]
        assert [(row.status, row.attempts) for row in held] == [("pending", 0)] * 3
        assert all(row.next_attempt_at <= clock() for row in held), "due, not leased"

        assert await world.another_dispatcher().deliver() == 3
        async with engine.connect() as conn:
            outbox = (await conn.execute(_OUTBOX)).all()
    assert {(row.status, row.attempts) for row in outbox} == {("sent", 1)}
    assert arrived == ["immediate_confirmed", "fever_cluster"], "each webhook page sent once"


AT_ONCE = {"group_wait_seconds": 0}

_OUTBOX = select(
    alerts.c.rule,
    notifications.c.status,
    notifications.c.attempts,
    notifications.c.next_attempt_at,
).join(alerts, alerts.c.id == notifications.c.alert_id)
