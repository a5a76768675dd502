"""The simulated command centre: the response loop's steps against the real response service.

It declares levels (``POST /v1/levels``) and pushes tasks down (``POST /v1/tasks``)
with an ``operate`` token scoped above the communities, remembers the ids the
service answers, and turns each community's result into the
``zhibao.task_result.v1`` event that intake takes. Before lifting a level it
waits until the service has applied the results already reported for that
level's tasks (it reads them back, as a command centre reads its measures),
so lifting closes exactly the tasks that are still open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from zhibao_client.client import RequestRefused
from zhibao_client.simulator.loop import (
    LIFTED,
    DeclareLevel,
    DeclarePoint,
    IssueTasks,
    LiftPoint,
    ReportResult,
)
from zhibao_client.simulator.truth import GroundTruth

#: Tasks per ``POST /v1/tasks`` (the service takes 10,000 by default).
TASKS_PER_REQUEST = 5000
#: A point's ``start`` the response service accepts lies within 60 days of now; an
#: older simulated start is left to the service (now).
POINT_START_RANGE = timedelta(days=59)
_OPEN = ("issued", "accepted")


class CommandCentre:
    """Acts for the command centre; ``ids`` maps the simulator's task keys to the service's."""

    def __init__(
        self,
        base_url: str,
        token: str,
        truth: GroundTruth,
        *,
        settle_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._url = base_url.rstrip("/")
        self._truth = truth
        self._settle_s = settle_s
        self._http = httpx.Client(timeout=timeout_s, headers={"authorization": f"Bearer {token}"})
        self.ids: dict[str, str] = {}
        self.levels = 0
        self.points: dict[tuple[str, str], str] = {}  # (community, compound) → point id
        self._reported: dict[str, list[str]] = {}  # unit → its level's tasks reported on

    def declare(self, step: DeclareLevel, before: Callable[[], None] = lambda: None) -> None:
        """Declare (or lift) a level; ``before`` a lift first delivers what is pending."""
        if step.level == LIFTED:
            before()
            self._settle(self._reported.pop(step.unit, []))
        body = {
            "unit": step.unit,
            "level": step.level,
            "reason": step.reason,
            "compounds": list(step.compounds),
        }
        answer = self._post("/v1/levels", body, 201)
        self.levels += 1
        issued: list[str] = answer.get("tasks_issued", [])
        if step.level != LIFTED:
            self._truth.keep_declared(len(issued), step.unit)
            self.ids |= {f"{step.tasks_key}-{n}": task for n, task in enumerate(issued)}

    def declare_point(self, step: DeclarePoint) -> None:
        """Declare an epidemic point at the step's compound, from the step's time."""
        body: dict[str, Any] = {"unit": step.unit, "compound": step.compound, "reason": step.reason}
        if abs(datetime.now(UTC) - step.when) < POINT_START_RANGE:
            body["start"] = step.when.isoformat()
        answer = self._post("/v1/points", body, 201)
        self.points[(step.unit, step.compound)] = answer["id"]

    def lift_point(self, step: LiftPoint) -> None:
        """Lift the point declared at the step's compound (if the run declared one)."""
        point = self.points.get((step.unit, step.compound))
        if point is not None:
            self._post(f"/v1/points/{point}/lift", {"reason": step.reason}, 200)

    def issue(self, step: IssueTasks) -> int:
        """Push the tasks down (5,000 a request); how many were issued."""
        plans = step.tasks
        for start in range(0, len(plans), TASKS_PER_REQUEST):
            chunk = plans[start : start + TASKS_PER_REQUEST]
            answer = self._post("/v1/tasks", [p.body() for p in chunk], 201)
            self.ids |= {p.key: task for p, task in zip(chunk, answer["ids"], strict=True)}
        return len(plans)

    def result_event(self, step: ReportResult) -> dict[str, Any] | None:
        """The result's event, or None when the service never issued its task."""
        task = step.task or self.ids.get(step.key)
        if task is None:
            return None
        declared = self._truth.tasks.get(step.key)
        if declared is not None and declared.declared:
            self._reported.setdefault(step.community, []).append(task)
        return step.event(task)

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def _settle(self, tasks: list[str]) -> None:
        """Wait (up to ``settle_s``) until none of ``tasks`` is open any more."""
        deadline = time.monotonic() + self._settle_s
        waiting = list(tasks)
        while waiting and time.monotonic() < deadline:
            waiting = [t for t in waiting if self._get(f"/v1/tasks/{t}")["state"] in _OPEN]
            if waiting:
                time.sleep(0.1)

    def _post(self, path: str, body: Any, expected: int) -> dict[str, Any]:
        return self._call("POST", path, expected, body)

    def _get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, 200)

    def _call(self, method: str, path: str, expected: int, body: Any = None) -> dict[str, Any]:
        """One request; a 503 (database busy) is retried after its Retry-After."""
        for _attempt in range(10):
            answer = self._http.request(method, self._url + path, json=body)
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers.get("retry-after", "1")))
        if answer.status_code != expected:
            raise RequestRefused(answer.status_code, f"{method} {path}: {answer.text[:300]}")
        result: dict[str, Any] = answer.json()
        return result
