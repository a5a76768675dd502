"""The response loop under load: tasks issued in one request, their results through intake.

A command centre issues ``n`` companion-verification tasks across every community
in one ``POST /v1/tasks``; communities answer each with a ``zhibao.task_result.v1``
through intake (batches of 100, as their systems would send them). Timed: the issue
request, until the rollups show every task open, the results' POSTs, and until the
rollups show every task done. Exactness: the city's and every community's task
figures against what was issued and answered, and the response service's own count.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from zhibao_bench.harness import CITY, Running
from zhibao_bench.loadclient import run_in_process
from zhibao_bench.phases import posts
from zhibao_bench.workload import communities

KIND = "verify_contact"
#: Results refused only because intake had not yet seen their task are sent again.
RETRYABLE = frozenset({409, 503})


def _tasks(n: int, units: list[str], due: datetime) -> list[dict[str, Any]]:
    return [
        {
            "unit": units[i % len(units)],
            "kind": KIND,
            "due": due.isoformat(),
            "person": {"ref": f"bench-task-{i}"},
        }
        for i in range(n)
    ]


def _result(task: str, unit: str, now: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/bench/worker-app",
        "subject": unit,
        "type": "zhibao.task_result.v1",
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": {"task": task, "outcome": "done", "method": "visit"},
    }


def task_figures(run: Running, unit: str) -> dict[str, Any]:
    """A unit's task figures in today's rollup."""
    answer = run.http.get(f"{run.url('aggregator')}/v1/units/{unit}/rollup")
    answer.raise_for_status()
    figures: dict[str, Any] = answer.json()["figures"]
    return figures


def _wait(run: Running, field: str, expected: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if task_figures(run, CITY).get(field) == expected:
            return time.perf_counter()
        time.sleep(0.1)
    raise TimeoutError(
        f"the city's {field} is {task_figures(run, CITY).get(field)}, not {expected}"
    )


def _issue(run: Running, tasks: list[dict[str, Any]]) -> list[str]:
    answer = run.http.post(
        f"{run.url('response')}/v1/tasks",
        content=json.dumps(tasks).encode(),
        headers={"content-type": "application/json"},
        timeout=600,
    )
    answer.raise_for_status()
    ids: list[str] = answer.json()["ids"]
    return ids


def _send_results(run: Running, results: list[dict[str, Any]], size: int) -> dict[int, int]:
    """POST the results; send again those intake could not yet match to their task."""
    statuses: Counter[int] = Counter()
    pending = results
    for _attempt in range(20):
        load = run_in_process(
            run.url("intake"),
            posts(run.url("intake"), run.report_token, pending, size),
            connections=8,
        )
        statuses.update(load.statuses)
        if not RETRYABLE & set(load.statuses):
            break
        time.sleep(0.5)
        pending = [r for r in pending if not _done(run, r)]
    return dict(statuses)


def _done(run: Running, result: dict[str, Any]) -> bool:
    answer = run.http.get(f"{run.url('response')}/v1/tasks/{result['data']['task']}")
    return answer.status_code == 200 and answer.json().get("state") == "done"


def _exactness(run: Running, units: list[str], n: int) -> dict[str, int]:
    expected = Counter(units[i % len(units)] for i in range(n))
    wrong = sum(
        1
        for unit, count in expected.items()
        if task_figures(run, unit).get("tasks_done") != count
        or task_figures(run, unit).get("tasks_open") != 0
    )
    city = task_figures(run, CITY)
    return {
        "tasks_lost": max(0, n - int(city.get("tasks_done") or 0)),
        "tasks_double_counted": max(0, int(city.get("tasks_done") or 0) - n),
        "tasks_figures_wrong": wrong,
        "tasks_communities_checked": len(expected),
    }


def phase_tasks(run: Running, n: int, batch_size: int) -> dict[str, Any]:
    """Issue ``n`` tasks in one request, answer each through intake; times and exactness."""
    units = communities()
    now = datetime.now(UTC)
    tasks = _tasks(n, units, now + timedelta(days=2))
    started = time.perf_counter()
    ids = _issue(run, tasks)
    issued = time.perf_counter()
    open_visible = _wait(run, "tasks_open", n, timeout_s=600)
    results = [
        _result(task, task_def["unit"], now) for task, task_def in zip(ids, tasks, strict=True)
    ]
    answering = time.perf_counter()
    statuses = _send_results(run, results, batch_size)
    answered = time.perf_counter()
    done_visible = _wait(run, "tasks_done", n, timeout_s=1200)
    return {
        "tasks": n,
        "tasks_issue_s": round(issued - started, 2),
        "tasks_open_visible_s": round(open_visible - started, 2),
        "tasks_results_post_s": round(answered - answering, 2),
        "tasks_done_visible_s": round(done_visible - answering, 2),
        "tasks_results_per_s": round(n / (done_visible - answering)),
        "tasks_result_statuses": statuses,
        **_exactness(run, units, n),
    }
