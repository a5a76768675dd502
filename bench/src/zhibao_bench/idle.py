"""The alerts service at rest with many open alerts: its CPU while nothing arrives.

Confirmed cases of distinct persons are posted through intake (one alert
each: a case alert is one per person and day); once the alerts service shows
them all open, every consumer has caught up and the paging they set off is
over (none pending, by the service's gauge, and no notification sent, failed,
abandoned or held for a few seconds), the alerts process's CPU time is read over
a stretch of idleness. What it spends then is the cost of its timers
(escalation, reminders, expiry) over the open alerts. If the wait times out (a
receiver failing, a robot's backlog), the stretch reports how many notifications
were pending when it began and how many went out in it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from zhibao_bench.harness import Running, process_cpu_s
from zhibao_bench.loadclient import run_in_process
from zhibao_bench.phases import posts
from zhibao_bench.workload import communities, resident_id

#: People numbered apart from every other workload's.
PEOPLE_FROM = 25_000_000
#: The rule a confirmed case raises (one alert per person and day).
CASE_RULE = "immediate_confirmed"
#: Counters that move whenever the alerts service pages (or tries to).
_DELIVERY_COUNTERS = (
    "zhibao_alerts_notifications_sent_total{",
    "zhibao_alerts_notifications_failed_total{",
    "zhibao_alerts_notifications_gave_up_total{",
    "zhibao_alerts_notifications_paced_total{",
)


def confirmed_cases(count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` confirmed cases, each a different person, spread over every community."""
    codes = communities()
    when = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    return [
        {
            "specversion": "1.0",
            "id": f"{tag}-case-{i}",
            "source": f"/{codes[i % len(codes)]}/clinic",
            "subject": codes[i % len(codes)],
            "time": when,
            "type": "zhibao.case.v1",
            "data": {
                "person": {"id_number": resident_id(PEOPLE_FROM + i)},
                "classification": "confirmed",
            },
        }
        for i in range(count)
    ]


def _metric_sum(run: Running, prefixes: tuple[str, ...], wanted: str = "") -> int:
    """The sum of the alerts service's samples whose line starts with one of ``prefixes``
    (and contains ``wanted``)."""
    text = httpx.get(f"{run.url('alerts')}/metrics", timeout=10).text
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(prefixes) and wanted in line
        )
    )


def open_alerts(run: Running, rule: str = "") -> int:
    """Alerts firing, acknowledged or silenced (of one rule, if named), from the alerts
    service's metrics."""
    return _metric_sum(run, ("zhibao_alerts_open{",), f'rule="{rule}"' if rule else "")


def deliveries(run: Running) -> int:
    """Notifications sent, failed, abandoned or held so far (they move while it pages)."""
    return _metric_sum(run, _DELIVERY_COUNTERS)


def pending_notifications(run: Running) -> int:
    """Notifications not delivered yet, as the alerts service's gauge last saw them."""
    return _metric_sum(run, ("zhibao_alerts_notifications_pending{",))


def wait_paging_stopped(run: Running, quiet_s: float, timeout_s: float) -> float:
    """Block until nothing is pending and :func:`deliveries` has not moved for ``quiet_s``;
    return the wait in s (the timeout ends the wait, not the run: the stretch then reports
    what was pending and what it paged)."""
    started = time.monotonic()
    last, since = deliveries(run), started
    while time.monotonic() - started < timeout_s:
        if time.monotonic() - since >= quiet_s and not pending_notifications(run):
            break
        time.sleep(0.5)
        now = deliveries(run)
        if now != last:
            last, since = now, time.monotonic()
    return time.monotonic() - started


def phase_alerts_idle(run: Running, alerts: int, idle_s: float) -> dict[str, Any]:
    """(8) open ``alerts`` alerts, then the alerts process's CPU over ``idle_s`` seconds."""
    requests = posts(run.url("intake"), run.report_token, confirmed_cases(alerts, "idle"), 100)
    load = run_in_process(run.url("intake"), requests, connections=4)
    deadline = time.monotonic() + 600
    while (opened := open_alerts(run, CASE_RULE)) < alerts and time.monotonic() < deadline:
        time.sleep(0.5)
    run.wait_settled(timeout_s=600)
    paging_s = wait_paging_stopped(run, quiet_s=min(3.0, idle_s), timeout_s=120)
    pid = run.stack.pid("alerts")
    if pid is None:
        raise RuntimeError("the alerts service is not running")
    paged, pending = deliveries(run), pending_notifications(run)
    before, started = process_cpu_s(pid), time.perf_counter()
    time.sleep(idle_s)
    used, elapsed = process_cpu_s(pid) - before, time.perf_counter() - started
    return {
        "alerts_idle_cpu_pct": round(100 * used / elapsed, 2),
        "alerts_idle_open": open_alerts(run),
        "alerts_idle_open_cases": opened,
        "alerts_idle_seconds": round(elapsed, 1),
        "alerts_idle_paging_wait_s": round(paging_s, 1),
        "alerts_idle_notifications": deliveries(run) - paged,
        "alerts_idle_pending_notifications": pending,
        "alerts_idle_post_statuses": load.statuses,
    }
