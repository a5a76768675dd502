"""The live hub on its own: parsing, scope filtering, bounded queues, resync, the SSE format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from zhibao_aggregator.dashboard.hub import (
    RESYNC,
    LiveHub,
    LiveItem,
    Subscriber,
    Watch,
    parse,
    sse,
    stream,
)

STREET = "640106001"


def rollup(code: str, **figures: int) -> bytes:
    """A rollup message as the publisher sends it."""
    body = {"unit": code, "level": "x", "date": "2026-11-25", "figures": figures}
    return json.dumps(body).encode()


def alert(code: str, rule: str = "immediate_confirmed") -> bytes:
    """An Alertmanager v4 body as the alerts service publishes it."""
    labels = {"alertname": rule, "severity": "critical", "unit": code}
    notes = {"summary": "Confirmed case", "summary_zh": "确诊病例", "hierarchy": "金凤区"}
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "annotations": notes}],
    }
    return json.dumps(body).encode()


class FakeSource:
    """Delivers what the test hands it."""

    connected = True

    def __init__(self) -> None:
        self.deliver: Callable[[str, bytes], None] | None = None
        self.reconnect: Callable[[], None] | None = None

    async def run(
        self, deliver: Callable[[str, bytes], None], on_reconnect: Callable[[], None]
    ) -> None:
        self.deliver, self.reconnect = deliver, on_reconnect
        await asyncio.Event().wait()


def test_rollups_and_alerts_are_parsed_and_garbage_is_ignored() -> None:
    [item] = parse("zhibao.rollups.street.640106001", rollup(STREET, fevers=3))
    assert (item.kind, item.unit, item.data["figures"]) == ("rollup", STREET, {"fevers": 3})
    [warning] = parse("zhibao.alerts.critical.640106", alert("640106001001"))
    assert warning.kind == "alert"
    assert warning.data["summary_zh"] == "确诊病例"
    assert warning.data["rule"] == "immediate_confirmed"
    assert parse("zhibao.rollups.street.x", b"not json") == []
    assert parse("zhibao.rollups.street.x", b"[1]") == []
    assert parse("zhibao.rollups.street.x", b'{"unit": "abc", "figures": {}}') == []
    assert parse("zhibao.other", rollup(STREET)) == []


def test_a_watch_keeps_to_the_token_scope_and_the_shown_unit() -> None:
    street = Watch(("640106001",))
    assert street.accepts(LiveItem("rollup", "640106001002"))
    assert not street.accepts(LiveItem("rollup", "640106002001")), "the neighbouring street"
    assert not street.accepts(LiveItem("rollup", "640106")), "the district above"
    district_page = Watch(("640106",), unit="640106")
    assert district_page.accepts(LiveItem("rollup", "640106"))
    assert district_page.accepts(LiveItem("rollup", "640106003")), "a child row"
    assert not district_page.accepts(LiveItem("rollup", "640106003001")), "a grandchild"
    assert district_page.accepts(LiveItem("alert", "640106003001")), "alerts: the whole subtree"
    assert not district_page.accepts(LiveItem("alert", "640105001001"))


def test_a_slow_client_is_dropped_to_one_resync_and_never_grows() -> None:
    slow = Subscriber(Watch(("6401",)), size=3)
    for n in range(10):
        slow.offer(LiveItem("rollup", f"640106001{n:03d}"))
    assert slow.queue.qsize() <= 3
    queued = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert RESYNC in queued
    assert slow.dropped > 0


async def test_one_source_fans_out_to_each_client_within_its_scope() -> None:
    source = FakeSource()
    hub = LiveHub(source, queue_size=8)
    mine = hub.subscribe(Watch(("640106001",)))
    theirs = hub.subscribe(Watch(("640106002",)))
    await asyncio.sleep(0)
    assert source.deliver is not None and source.reconnect is not None
    source.deliver("zhibao.rollups.community.640106001001", rollup("640106001001", fevers=1))
    source.deliver("zhibao.alerts.critical.640106", alert("640106002001"))
    assert [mine.queue.get_nowait().unit] == ["640106001001"]
    assert mine.queue.empty()
    assert [theirs.queue.get_nowait().kind] == ["alert"]
    source.reconnect()
    assert mine.queue.get_nowait() is RESYNC
    await hub.close()


async def test_the_stream_says_hello_sends_items_and_heartbeats_then_ends_on_close() -> None:
    source = FakeSource()
    hub = LiveHub(source)
    subscriber = hub.subscribe(Watch(("640106",)))
    events = stream(hub, subscriber, heartbeat_s=0.05, now=lambda: "T")
    assert (await anext(events)).startswith("retry: 3000\nevent: hello\n")
    assert (await anext(events)).startswith("event: heartbeat\n")
    await asyncio.sleep(0)
    assert source.deliver is not None
    source.deliver("zhibao.rollups.street.640106001", rollup(STREET, screenings=19))
    text = await anext(events)
    assert text.startswith("event: rollup\ndata: ")
    assert json.loads(text.split("data: ", 1)[1])["figures"] == {"screenings": 19}
    assert hub.clients == 1
    await hub.close()
    assert [chunk async for chunk in events] == []
    assert hub.clients == 0


def test_an_event_is_one_line_of_json() -> None:
    assert sse("rollup", {"name": "枫林湾\n社区"}) == (
        'event: rollup\ndata: {"name":"枫林湾\\n社区"}\n\n'
    )
