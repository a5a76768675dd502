"""(4) Latency under mixed load, observed from outside the services.

The stack first takes a history (a million events over 400 days in every community,
published straight to the stream as the batched phase's fill), and the load begins
once every service has caught up with it and the alerts it raised have been paged:
the load meets the tables of a system in use, not empty ones.

Single events are offered at a fixed rate (open loop: latency counts from when
each POST was due, so a client falling behind is not hidden) while rollups
are read over HTTP at district and city level and one live dashboard stream
(``/v1/live``, server-sent events) stays open. Every few seconds one of the
events is a confirmed case in a community that has none yet today: the
alerts service raises an alert for it and delivers it to a webhook receiver
running here.

* POST → rollup: the aggregator publishes changed rollups on
  ``zhibao.rollups.community.<code>``; a subscriber here timestamps each one.
  The k-th event POSTed for a community is visible once that community's
  ``events`` figure for the day reaches k more than the history held (rank
  matching: the figure counts events, not identities; spread over 323
  communities, reordering within one is rare).
* POST → webhook: the arrival of the ``immediate_confirmed`` notification for
  the case's community.

The aggregator runs with its default publish interval (0.5 s), as ``zhibao
up`` runs it: a community's rollup is published at most twice a second, so
an event that arrives just after its community's rollup went out waits up to
that long. Every figure is then checked at every level (exactness.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import nats

from zhibao_bench import exactness
from zhibao_bench.fill import publish_history
from zhibao_bench.harness import CITY, DISTRICT, CpuShares, RssSampler, Running, running_stack
from zhibao_bench.idle import pending_notifications, wait_paging_stopped
from zhibao_bench.loadclient import LoadResult, encode_get, encode_post, percentile, run_in_process
from zhibao_bench.workload import Truth, build_workload, resident_id, span, truth_of
from zhibao_shared.events import CONTENT_TYPE_SINGLE
from zhibao_shared.hierarchy import Level, load_registry

ZONE = ZoneInfo("Asia/Shanghai")
#: The confirmed cases' persons are numbered apart from the workload's.
CASE_PEOPLE_FROM = 20_000_000


@dataclass(frozen=True)
class MixedConfig:
    """How hard and how long phase 4 pushes."""

    rate: float = 2000.0
    seconds: float = 60.0
    #: Enough for the offered rate not to wait for a free connection (Little's law: 2,000
    #: POSTs a second at 16-18 ms each keep ~34 in flight; 32 capped the offer at ~1,800/s
    #: and the client's lag then counted as the services' latency), as the single phase.
    connections: int = 64
    reads_per_s: float = 20.0
    case_every_s: float = 2.0
    #: The aggregator's rollup publish interval; None leaves its default, as ``zhibao up``.
    publish_interval_s: float | None = None
    #: Events on the stream before the load begins, spread over ``history_days`` and every
    #: community (as the batched phase's fill), so the load meets the tables of a system in use.
    history_events: int = 1_000_000
    history_days: float = 400
    #: Events per bundle of the history (as intake publishes a 100-event POST).
    history_per_message: int = 100


@dataclass
class _Receiver:
    """Webhook deliveries: (arrival time, alertname, unit)."""

    url: str = ""
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[_Receiver]:
    """A local Alertmanager-format webhook receiver that timestamps each delivery."""
    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            labels = body.get("groupLabels", {})
            receiver.arrivals.append((arrived, labels.get("alertname", ""), labels.get("unit", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class _RollupWatcher:
    """Timestamps every published community rollup: (arrival, community, day) → events."""

    def __init__(self, nats_url: str) -> None:
        self._url = nats_url
        self.seen: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        self.messages = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))

    async def _run(self) -> None:
        client = await nats.connect(self._url)
        self._stop = asyncio.Event()

        async def on_message(message: Any) -> None:
            arrived = time.time()
            body = json.loads(message.data)
            self.messages += 1
            self.seen[(body["unit"], body["date"])].append(
                (arrived, int(body["figures"].get("events") or 0))
            )

        await client.subscribe("zhibao.rollups.community.>", cb=on_message)
        await client.flush()
        self._ready.set()
        await self._stop.wait()
        await client.drain()

    def __enter__(self) -> _RollupWatcher:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class _LiveStream:
    """One dashboard client holding ``/v1/live`` open; counts the messages it receives.

    A plain socket, so leaving can cut the stream at once: an open stream would hold
    the aggregator's shutdown until the next heartbeat.
    """

    def __init__(self, url: str, token: str) -> None:
        parsed = urlparse(url)
        self._address = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._request = (
            f"GET /v1/live?access_token={token} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        self.messages = 0
        self.status: int | None = None
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with suppress(OSError, ValueError), socket.create_connection(self._address, 10) as sock:
            self._socket = sock
            sock.sendall(self._request)
            sock.settimeout(None)
            reader = sock.makefile("rb")
            self.status = int(reader.readline().split()[1])
            for line in reader:
                self.messages += line.startswith(b"data:")

    def __enter__(self) -> _LiveStream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._socket is not None:
            with suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)


def _cases(communities: list[str], count: int, tag: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "specversion": "1.0",
            "id": f"{tag}-case-{i}",
            "source": f"/{community}/clinic",
            "subject": community,
            "time": (now - timedelta(seconds=120)).isoformat(),
            "type": "zhibao.case.v1",
            "data": {
                "person": {"id_number": resident_id(CASE_PEOPLE_FROM + i)},
                "classification": "confirmed",
            },
        }
        for i, community in enumerate(communities[:count])
    ]


def _day(event: dict[str, Any]) -> str:
    return datetime.fromisoformat(event["time"]).astimezone(ZONE).date().isoformat()


def _rollup_latencies(
    events: list[dict[str, Any]],
    due: list[float],
    seen: dict[tuple[str, str], list[tuple[float, int]]],
    before: dict[tuple[str, str], int],
) -> tuple[list[float], int]:
    """Milliseconds from each event's due POST to the rollup showing it; and how many never.

    ``before``: each (community, day)'s events on the stream before the load (the history).
    """
    ranks: dict[tuple[str, str], int] = defaultdict(int)
    ranks.update(before)
    latencies: list[float] = []
    invisible = 0
    for event, sent in zip(events, due, strict=True):
        key = (event["subject"], _day(event))
        ranks[key] += 1
        updates = seen.get(key, [])
        visible = next((t for t, count in updates if count >= ranks[key]), None)
        if visible is None:
            invisible += 1
        else:
            latencies.append(max(0.0, visible - sent) * 1000)
    return latencies, invisible


def _events(mixed: MixedConfig, tag: str) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The events offered, with a confirmed case every ``case_every_s`` in a community of
    its own; and the cases' positions and communities."""
    total = int(mixed.rate * mixed.seconds)
    workload = build_workload(total, seed=17, tag=tag)
    events = [e for e in workload.events if e["type"] != "zhibao.case.v1"]  # alerts: ours only
    communities = [u.code for u in load_registry().at_level(Level.COMMUNITY)]
    n_cases = min(len(communities), max(1, int(mixed.seconds / mixed.case_every_s)))
    cases = _cases(communities, n_cases, tag)
    step = max(1, len(events) // n_cases)
    for j, case in enumerate(cases):  # spread the cases evenly through the run
        events.insert(min(len(events), j * step + step // 2), case)
    events = events[:total]
    case_at = {
        index: event["subject"]
        for index, event in enumerate(events)
        if event["type"] == "zhibao.case.v1" and event["data"]["classification"] == "confirmed"
    }
    return events, case_at


@dataclass(frozen=True)
class _History:
    """The history on the stream before the load, as the stack took it."""

    truth: Truth
    #: events the city's rollups showed over the history's days once it was taken
    shown: int
    #: from the first publish to every service caught up and the paging paused
    settle_s: float
    #: of which waiting for the paging of the alerts it raised (at most 120 s)
    paging_wait_s: float
    #: notifications still pending when the load began
    pending: int


def _history(run: Running, mixed: MixedConfig) -> _History:
    """Publish the history straight to the stream and wait until every service has taken
    it and the alerts it raised have been paged."""
    started = time.perf_counter()
    truth = publish_history(
        run.stack.bus_url, mixed.history_events, mixed.history_days, mixed.history_per_message
    )
    shown = 0
    if truth:
        first, last = span(truth)
        run.wait_visible(mixed.history_events, first, last, timeout_s=3600)
        shown = run.shown(first, last)
    run.wait_settled(timeout_s=3600)
    paging_s = wait_paging_stopped(run, quiet_s=3.0, timeout_s=120)
    settle_s = time.perf_counter() - started
    return _History(truth, shown, settle_s, paging_s, pending_notifications(run))


def history_counts(truth: Truth) -> dict[tuple[str, str], int]:
    """Each (community, local day in ISO form, as published rollups name it)'s events."""
    return {(c, day.isoformat()): n for (c, day, metric), n in truth.items() if metric == "events"}


def _window() -> tuple[date, date]:
    """The load's days and the two before, fixed once: a count over a window that moved
    at midnight (UTC) would lose a day of the history."""
    today = datetime.now(UTC).date()
    return today - timedelta(days=2), today


def _offer(
    run: Running, mixed: MixedConfig, events: list[dict[str, Any]], window: tuple[date, date]
) -> tuple[LoadResult, LoadResult, int]:
    """POST ``events`` at the offered rate while reading rollups at ``reads_per_s``; the
    loads, and the events shown over ``window`` when the last POST was answered."""
    intake, aggregator = run.url("intake"), run.url("aggregator")
    posts = [
        encode_post(
            intake, "/v1/events", json.dumps(e).encode(), run.report_token, CONTENT_TYPE_SINGLE
        )
        for e in events
    ]
    paths = [f"/v1/units/{DISTRICT}/rollup", f"/v1/units/{CITY}/rollup"]
    n_reads = max(1, int(mixed.reads_per_s * mixed.seconds))
    reads = [encode_get(aggregator, paths[i % 2], run.read_token) for i in range(n_reads)]
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(
            run_in_process, aggregator, reads, connections=2, rate=mixed.reads_per_s
        )
        load = run_in_process(intake, posts, connections=mixed.connections, rate=mixed.rate)
        shown = run.shown(*window)
        return load, reading.result(), shown


def phase_mixed(mixed: MixedConfig, tag: str = "mixed") -> dict[str, Any]:
    """(4) run the mixed load against every service, on a stream holding the history;
    return its figures."""
    events, case_at = _events(mixed, tag)
    with webhook_receiver() as receiver, _oncall(receiver.url) as oncall:
        env = {"ZHIBAO_ALERTS_ONCALL_PATH": str(oncall)}
        if mixed.publish_interval_s is not None:
            env["ZHIBAO_AGGREGATOR_PUBLISH_INTERVAL_S"] = str(mixed.publish_interval_s)
        with running_stack(extra_env=env) as run:
            history = _history(run, mixed)
            window = _window()
            expected = run.shown(*window) + len(events)
            with (
                RssSampler(run.pids()) as rss,
                _RollupWatcher(run.stack.bus_url) as watcher,
                _LiveStream(run.url("aggregator"), run.read_token) as live,
            ):
                with CpuShares(run.cpu_seconds) as cpu:
                    load, read_load, shown_at_end = _offer(run, mixed, events, window)
                drained = run.wait_visible(expected, *window, timeout_s=600)
                _wait_for(lambda: _delivered(receiver, case_at) >= len(case_at), timeout_s=180)
                truth = truth_of(events, datetime.now(UTC))
                exact = exactness.check(
                    run.url("aggregator"),
                    run.read_token,
                    exactness.merged([history.truth, truth]),
                    *span(truth),
                )
                # the last rollups published
                time.sleep((mixed.publish_interval_s or 0.5) * 3 + 0.5)
    before = history_counts(history.truth)
    rollup_ms, invisible = _rollup_latencies(events, load.send_times, watcher.seen, before)
    alert_ms = _alert_latencies(case_at, load.send_times, receiver)
    accepted = load.statuses.get(202, 0)
    return {
        "mixed_offered_per_s": mixed.rate,
        "mixed_achieved_per_s": round(accepted / (load.finished - load.started)),
        "mixed_seconds": mixed.seconds,
        "mixed_history_events": history.shown,
        "mixed_history_days": mixed.history_days,
        "mixed_history_settle_s": round(history.settle_s, 1),
        "mixed_history_paging_wait_s": round(history.paging_wait_s, 1),
        "mixed_history_pending_notifications": history.pending,
        "mixed_post_statuses": load.statuses,
        "mixed_post_p50_ms": round(percentile(load.latencies_ms, 50), 2),
        "mixed_post_p99_ms": round(percentile(load.latencies_ms, 99), 2),
        "mixed_client_max_lag_ms": round(load.max_lag_ms, 1),
        # The offered rate not achieved shows as a backlog in the client: POSTs sent
        # more than a second late (latencies count from when each was due).
        "mixed_client_late_over_1s": load.late_over_1s,
        "mixed_client_cpu_share": round(load.cpu_share, 3),
        # Cores kept busy while the load was offered: each service, and the machine (the
        # load clients and anything else included), of mixed_machine_cores.
        "mixed_cpu_cores": cpu.cores,
        "mixed_machine_busy_cores": cpu.machine_busy_cores,
        "mixed_machine_cores": cpu.machine_cores,
        "mixed_backlog_at_end": max(0, expected - shown_at_end),
        "mixed_drain_s": round(max(0.0, drained - load.finished), 2),
        "p50_rollup_ms": round(percentile(rollup_ms, 50), 1),
        "p95_rollup_ms": round(percentile(rollup_ms, 95), 1),
        "p99_rollup_ms": round(percentile(rollup_ms, 99), 1),
        "mixed_rollup_never_seen": invisible,
        "mixed_rollup_messages": watcher.messages,
        "mixed_publish_interval_s": mixed.publish_interval_s or "default",
        "mixed_cases": len(case_at),
        "mixed_alerts_delivered": len(alert_ms),
        "p50_alert_ms": round(percentile(alert_ms, 50), 1),
        "p95_alert_ms": round(percentile(alert_ms, 95), 1),
        "p99_alert_ms": round(percentile(alert_ms, 99), 1),
        "mixed_reads": len(read_load.latencies_ms),
        "mixed_read_statuses": read_load.statuses,
        "mixed_read_p50_ms": round(percentile(read_load.latencies_ms, 50), 2),
        "mixed_read_p99_ms": round(percentile(read_load.latencies_ms, 99), 2),
        "mixed_live_status": live.status,
        "mixed_live_messages": live.messages,
        "mixed_peak_rss_mb": {k: round(v) for k, v in rss.peaks_mb.items()},
        "mixed_exactness": exact,
        "mixed_lost": exact["lost"],
        "mixed_double_counted": exact["double_counted"],
    }


@contextmanager
def _oncall(url: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zhibao-bench-oncall-") as tmp:
        path = Path(tmp) / "oncall.yaml"
        path.write_text(f"webhooks: ['{url}/hook']\ngroup_wait_seconds: 0\n")
        yield path


def _delivered(receiver: _Receiver, case_at: dict[int, str]) -> int:
    wanted = set(case_at.values())
    return len(
        {unit for _, name, unit in receiver.arrivals if name == "immediate_confirmed"} & wanted
    )


def _alert_latencies(case_at: dict[int, str], due: list[float], receiver: _Receiver) -> list[float]:
    first: dict[str, float] = {}
    for arrived, name, unit in receiver.arrivals:
        if name == "immediate_confirmed" and unit not in first:
            first[unit] = arrived
    return [
        max(0.0, first[unit] - due[index]) * 1000
        for index, unit in case_at.items()
        if unit in first
    ]


def _wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
