"""Task results come back up: a community reports through intake, the response service
closes (or moves) the task, the aggregator counts the isolations it starts.

The real system as ``zhibao up`` runs it (nats-server with one user per service,
intake, response and aggregator as processes), with the whole bus tapped: nothing
personal in a result (its note) or a task (name, phone, ID number) travels on it.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.privacy.conftest import BusTap
from tests.response.conftest import a_task
from tests.support.clock import earlier_today
from tests.support.events import COMMUNITY_A, COMMUNITY_B, resident_id
from tests.support.task_results import task_result
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

NOTE = "邻居李建国说她已去外地, 电话13700001111"
PERSONAL = ("张秀兰", "13912345678", "枫林湾 3-2-501", "李建国", "13700001111")


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout_s:.0f}s waiting for {what}")


@dataclass
class System:
    """The running processes, the bus tap and the tokens."""

    stack: Stack
    bus: BusTap
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    def issue(self, *tasks: dict[str, Any]) -> list[str]:
        answer = httpx.post(
            f"{self.stack.url('response')}/v1/tasks", json=list(tasks), headers=self.auth("centre")
        )
        assert answer.status_code == 201, answer.text
        ids: list[str] = answer.json()["ids"]
        return ids

    def report(self, who: str, *events: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.stack.url('intake')}/v1/events", json=list(events), headers=self.auth(who)
        )

    def task(self, task_id: str, who: str = "centre") -> dict[str, Any]:
        answer = httpx.get(
            f"{self.stack.url('response')}/v1/tasks/{task_id}", headers=self.auth(who)
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def task_becomes(self, task_id: str, **wanted: Any) -> dict[str, Any]:
        """The task once its fields have the ``wanted`` values."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.task(task_id))
            return all(found.get(k) == v for k, v in wanted.items())

        wait_until(f"task {task_id} to have {wanted}", reached)
        return found

    def announced(self, task_id: str, state: str) -> None:
        """Wait until the response service announced the task's change on the bus (so the
        tasks stream, which intake follows, holds it)."""
        marker = f'"task":"{task_id}"'.encode()
        wanted = f'"state":"{state}"'.encode()
        wait_until(
            f"task {task_id} announced {state}",
            lambda: any(
                s.endswith(".changed") and marker in d and wanted in d
                for s, d, _ in list(self.bus.messages)
            ),
        )

    def figures(self, unit: str = COMMUNITY_A) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.stack.url('aggregator')}/v1/units/{unit}/rollup", headers=self.auth("centre")
        )
        assert answer.status_code == 200, answer.text
        figures: dict[str, Any] = answer.json()["figures"]
        return figures


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("task-results")
    data = root / "data"
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_PSEUDONYM_KEY": secrets.token_urlsafe(48),
        "ZHIBAO_RESPONSE_CHECK_INTERVAL_S": "0.2",
        "ZHIBAO_LOG_JSON": "true",
    }
    store = TokenStore.in_data_dir(data)
    specs = {
        "centre": (["640106"], Role.OPERATE),
        "community_a": ([COMMUNITY_A], Role.OPERATE),
        "worker_a": ([COMMUNITY_A], Role.REPORT),
        "worker_b": ([COMMUNITY_B], Role.REPORT),
        "district_app": (["640106"], Role.REPORT),
    }
    tokens = {
        name: store.create(scopes=scopes, role=role, name=name)[1]
        for name, (scopes, role) in specs.items()
    }
    store.close()
    stack = Stack(
        env=env,
        data_dir=data,
        nats_url=env["ZHIBAO_NATS_URL"],
        names=("intake", "response", "aggregator"),
        log_dir=root / "logs",
    )
    with stack:
        bus = BusTap(stack.bus_url)
        bus.start()
        try:
            yield System(stack, bus, tokens)
        finally:
            bus.stop()
    logs = "".join(p.read_text() for p in (root / "logs").glob("*.log"))
    assert not [value for value in PERSONAL if value in logs]


def results_of(answer: httpx.Response) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def test_a_visit_closes_the_task_and_the_history_names_the_reporter(system: System) -> None:
    [task_id] = system.issue(a_task())
    answer = system.report(
        "worker_a", task_result(task_id, method="visit", measures=["tested"], note=NOTE)
    )
    assert answer.status_code == 202, answer.text
    task = system.task_becomes(task_id, state="done")
    last = task["history"][-1]
    assert (last["action"], last["state"], last["by"]) == ("done", "done", "worker_a")
    assert last["result"]["method"] == "visit"
    assert last["result"]["measures"] == ["tested"]
    mine = system.task(task_id, "community_a")["history"][-1]["result"]
    assert (mine["note"], mine["note_status"]) == (NOTE, "shown")


def test_each_refusal_names_its_rule_and_the_rest_of_the_batch_is_judged_alone(
    system: System,
) -> None:
    [closed, elsewhere] = system.issue(a_task(), a_task())
    assert system.report("worker_a", task_result(closed)).status_code == 202
    system.task_becomes(closed, state="done")
    system.announced(closed, "done")
    never_issued = uuid.uuid4().hex
    answer = system.report(
        "district_app",
        task_result(closed),
        task_result(elsewhere, COMMUNITY_B),
        task_result(never_issued),
        task_result(elsewhere, outcome="unreachable", method="phone"),
    )
    assert answer.status_code == 207, answer.text
    results = results_of(answer)
    assert [r.get("code") for r in results] == [
        "task_closed",
        "task_not_assigned",
        "unknown_task",
        None,
    ]
    assert [r["errors"][0]["field"] for r in results[:3]] == ["data.task", "subject", "data.task"]
    assert results[3]["status"] == "accepted"
    system.task_becomes(elsewhere, state="unreachable")
    outside = system.report("worker_b", task_result(closed, COMMUNITY_A))
    assert outside.status_code == 403  # the token's scope is checked like any event's


def test_a_phone_call_cannot_close_a_task_that_needs_a_visit(system: System) -> None:
    [companion, contact] = system.issue(a_task(), a_task(kind="verify_contact"))
    refused = system.report("worker_a", task_result(companion, method="phone"))
    assert refused.status_code == 422, refused.text
    [result] = results_of(refused)
    assert (result["code"], result["errors"][0]["field"]) == ("visit_required", "data.method")
    assert "visit" in result["errors"][0]["message"]
    assert system.report("worker_a", task_result(contact, method="phone")).status_code == 202
    assert system.report("worker_a", task_result(companion, method="visit")).status_code == 202
    system.task_becomes(companion, state="done")
    system.task_becomes(contact, state="done")


def test_a_transfer_moves_the_task_with_its_history(system: System) -> None:
    [task_id] = system.issue(a_task())
    moved = task_result(task_id, outcome="transferred", transfer_to=COMMUNITY_B, method="phone")
    assert system.report("worker_a", moved).status_code == 202
    task = system.task_becomes(task_id, unit=COMMUNITY_B, state="issued")
    assert [h["action"] for h in task["history"]] == ["issued", "transferred"]
    assert task["history"][-1]["from_unit"] == COMMUNITY_A
    system.announced(task_id, "transferred")
    late = system.report("district_app", task_result(task_id), task_result(uuid.uuid4().hex))
    assert [r["code"] for r in results_of(late)] == ["task_not_assigned", "unknown_task"]
    assert system.report("worker_b", task_result(task_id, COMMUNITY_B)).status_code == 202
    system.task_becomes(task_id, state="done", unit=COMMUNITY_B)


def test_a_resend_of_a_result_that_closed_or_moved_its_task_is_a_duplicate(
    system: System,
) -> None:
    """A client that lost the answer sends the same event again, after the response
    service applied it: the task is closed (or with another community) by that very
    result, which must not turn the resend into a refusal."""
    [closed, moved] = system.issue(a_task(kind="verify_contact"), a_task(kind="verify_contact"))
    done = task_result(closed, method="phone")
    transfer = task_result(moved, outcome="transferred", transfer_to=COMMUNITY_B, method="phone")
    assert system.report("worker_a", done, transfer).status_code == 202
    system.announced(closed, "done")
    system.announced(moved, "transferred")
    again = system.report("worker_a", done, transfer)
    assert again.status_code == 202, again.text
    assert [r["status"] for r in results_of(again)] == ["duplicate", "duplicate"]
    assert again.json()["duplicates"] == 2
    other = task_result(closed, method="phone")  # a new event about the closed task
    assert [r["code"] for r in results_of(system.report("worker_a", other))] == ["task_closed"]
    assert [h["action"] for h in system.task(closed)["history"]] == ["issued", "done"]


def test_an_isolation_a_result_starts_is_counted_once(system: System) -> None:
    person = {"id_number": resident_id(seq=789)}
    before = system.figures()
    [task_id] = system.issue(a_task(person=person))
    started = task_result(task_id, measures=["home_isolation"], until="2026-12-20")
    # today's rollup is read: half a minute ago, but never before today's local midnight
    started["time"] = earlier_today(timedelta(seconds=30)).isoformat()
    assert system.report("worker_a", started).status_code == 202
    wait_until(
        "the isolation in the rollup",
        lambda: system.figures()["isolation_started"] == before["isolation_started"] + 1,
    )
    direct = task_result(task_id)  # the same person's isolation reported directly, later
    direct["type"] = "zhibao.isolation.v1"
    direct["data"] = {"person": person, "action": "start", "kind": "home"}
    direct["time"] = datetime.now(UTC).isoformat()
    assert system.report("worker_a", direct).status_code == 202
    wait_until(
        "the direct report counted", lambda: system.figures()["events"] >= before["events"] + 2
    )
    after = system.figures()
    assert after["isolation_started"] == before["isolation_started"] + 1
    assert after["in_isolation"] == before["in_isolation"] + 1


def test_nothing_personal_travels_on_the_bus(system: System) -> None:
    [task_id] = system.issue(a_task())
    answer = system.report("worker_a", task_result(task_id, note=NOTE, method="visit"))
    assert answer.status_code == 202
    system.task_becomes(task_id, state="done")
    system.announced(task_id, "done")
    assert any(b'"zhibao.task_result.v1"' in d for _, d, _ in list(system.bus.messages))
    assert any(b'"sealed_note"' in d for _, d, _ in list(system.bus.messages))
    everything = b"\n".join(d for _, d, _ in list(system.bus.messages))
    values = (*PERSONAL, resident_id(seq=456), resident_id(seq=789), NOTE)
    assert [v for v in values if v.encode() in everything] == []
