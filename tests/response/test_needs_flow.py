"""A need end to end, the real system as ``zhibao up`` runs it (nats-server with one user
per service, intake, response and aggregator as processes): reported through intake it
becomes exactly one task, a task result through intake fulfils it, and the rollups and the
community's register show it. Nothing personal travels on the bus."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.privacy.conftest import BusTap
from tests.response.test_task_results import System, wait_until
from tests.support.care_events import key_person, need
from tests.support.events import COMMUNITY_A, resident_id
from tests.support.task_results import task_result
from zhibao_cli.stack import Stack
from zhibao_shared.care_events import need_task_id
from zhibao_shared.events import event_identity
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

NUMBER = resident_id(seq=612)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("needs")
    data = root / "data"
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_PSEUDONYM_KEY": secrets.token_urlsafe(48),
        "ZHIBAO_LOG_JSON": "true",
    }
    store = TokenStore.in_data_dir(data)
    specs = {
        "centre": (["640106"], Role.OPERATE),
        "community_a": ([COMMUNITY_A], Role.OPERATE),
        "worker_a": ([COMMUNITY_A], Role.REPORT),
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
    assert NUMBER not in logs


def need_tasks(system: System) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{system.stack.url('response')}/v1/tasks",
        params={"unit": COMMUNITY_A},
        headers=system.auth("centre"),
    )
    assert answer.status_code == 200, answer.text
    return [t for t in answer.json()["tasks"] if t["kind"].startswith("need_")]


def register(system: System) -> dict[str, Any]:
    answer = httpx.get(
        f"{system.stack.url('aggregator')}/v1/units/{COMMUNITY_A}/key-persons",
        headers=system.auth("community_a"),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_need_through_intake_is_one_task_until_its_result_fulfils_it(system: System) -> None:
    person = {"id_number": NUMBER}
    registered = key_person(person=person, category="dialysis", compound="枫林湾")
    urgent = need(person=person, category="medical", urgency="urgent", compound="枫林湾")
    assert system.report("worker_a", registered, urgent).status_code == 202
    assert system.report("worker_a", urgent).json()["results"][0]["status"] == "duplicate"
    task_id = need_task_id(event_identity(COMMUNITY_A, urgent["source"], urgent["id"]))
    wait_until("the need's task issued", lambda: len(need_tasks(system)) == 1)
    [task] = need_tasks(system)
    assert (task["id"], task["kind"], task["state"]) == (task_id, "need_medical", "issued")
    due = datetime.fromisoformat(urgent["time"]) + timedelta(hours=2)
    assert datetime.fromisoformat(task["due"]) == due
    wait_until(
        "the need open in the rollup and the register",
        lambda: (
            system.figures().get("needs_open") == 1
            and [p["open_needs"] for p in register(system)["key_persons"]] == [1]
        ),
    )
    assert system.figures()["key_persons"] == {"dialysis": 1}
    result = task_result(task_id, method="visit")
    wait_until(
        "intake to accept the result",
        lambda: system.report("worker_a", result).status_code == 202,
    )
    system.task_becomes(task_id, state="done")
    wait_until("the need fulfilled in the rollup", lambda: system.figures()["needs_open"] == 0)
    figures = system.figures()
    assert figures["needs_median_hours"] is not None
    [row] = register(system)["key_persons"]
    assert (row["category"], row["compound"], row["open_needs"]) == ("dialysis", "枫林湾", 0)
    assert row["last_contact"] is not None  # the task result about the person
    assert len(need_tasks(system)) == 1
    issued = [
        d
        for s, d, _ in list(system.bus.messages)
        if s.endswith(".issued") and task_id.encode() in d
    ]
    # the tap also sees each consumer's delivery of it: one message, however often seen
    assert len(set(issued)) == 1 and b'"urgency":"urgent"' in issued[0]
    everything = b"".join(d for _, d, _ in list(system.bus.messages))
    assert NUMBER.encode() not in everything
