"""The alerts service in-process on a driven clock, with a real nats-server and real
webhook receivers, and task messages published as the response service publishes them."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
from asgi_lifespan import LifespanManager
from nats.aio.client import Client

from tests.alerts.conftest import Clock
from tests.support.webhook import Receiver
from zhibao_alerts.bootstrap import create_app, migrate
from zhibao_alerts.settings import AlertsSettings
from zhibao_shared.subjects import TASKS_STREAM, task_subject
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState, task_message
from zhibao_shared.tokens import Role, TokenStore

COMMUNITY = "640106001001"
NEIGHBOUR = "640106001002"
STREET = COMMUNITY[:9]
#: A pseudonym the messages carry: it must never reach an alert.
PID = "9f" * 16
_tasks = itertools.count(1)


def new_task_id() -> str:
    """A fresh task id (32 lowercase hex)."""
    return f"{next(_tasks):032x}"


def oncall(receiver: Receiver) -> str:
    """A community grid worker and the street's duty officer, each on their own webhook;
    the shipped escalation (a warning reaches the street after 30 minutes)."""
    start = "2026-01-01T00:00:00+08:00"
    rotations = [
        {"unit": unit, "start": start, "people": [{"name": name, "webhook": receiver.url + path}]}
        for unit, name, path in ((COMMUNITY, "grid", "/community"), (STREET, "street", "/street"))
    ]
    return json.dumps({"rotations": rotations})


@dataclass
class RunningAlerts:
    """The alerts app, its clock, an operator token for the district, the bus."""

    client: httpx.AsyncClient
    clock: Clock
    token: str
    bus: Client

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {token or self.token}"}

    async def alerts(self, unit: str = COMMUNITY, *states: str) -> list[dict[str, Any]]:
        """The task_overdue alerts of ``unit`` (open ones unless states are given)."""
        params: dict[str, Any] = {"unit": unit}
        if states:
            params["state"] = list(states)
        answer = await self.client.get("/v1/alerts", params=params, headers=self.auth())
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["alerts"]
        return [a for a in found if a["rule"] == "task_overdue"]

    async def detail(self, alert_id: int) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/alerts/{alert_id}", headers=self.auth())
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def publish(self, message: TaskMessage, msg_id: str | None = None) -> None:
        """Store a task message in the tasks stream, as the response service's outbox does."""
        event = {"task_overdue": "overdue", "task_changed": "changed", "task_issued": "issued"}
        await self.bus.jetstream().publish(
            task_subject(message.unit, event[message.event]),
            message.model_dump_json().encode(),
            stream=TASKS_STREAM,
            headers={"Nats-Msg-Id": msg_id or uuid.uuid4().hex},
        )

    def overdue(
        self, task: str, unit: str = COMMUNITY, kind: str = "verify_companion", **more: Any
    ) -> TaskMessage:
        """A task_overdue message: due an hour ago by default, announced now."""
        return task_message(
            TaskEvent.OVERDUE,
            task=task,
            unit=unit,
            kind=kind,
            due=more.get("due", self.clock.now - timedelta(hours=1)),
            state=TaskState.ISSUED,
            pid=PID,
            at=more.get("at", self.clock.now),
        )

    def changed(self, overdue: TaskMessage, state: TaskState, **more: Any) -> TaskMessage:
        """The task of an overdue message closed (or transferred to ``to``) now."""
        to = more.get("to")
        return task_message(
            TaskEvent.CHANGED,
            task=overdue.task,
            unit=to or overdue.unit,
            kind=overdue.kind,
            due=overdue.due,
            state=state,
            pid=PID,
            at=more.get("at", self.clock.now),
            from_unit=overdue.unit if to else None,
        )


async def eventually(
    what: str, read: Callable[[], Any], condition: Callable[[Any], bool], timeout_s: float = 20
) -> Any:
    """``read()`` (awaited when it is a coroutine) again until ``condition`` holds for
    its answer."""
    for _ in range(int(timeout_s / 0.05)):
        answer = read()
        if inspect.isawaitable(answer):
            answer = await answer
        if condition(answer):
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def pages(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The task_overdue pages a receiver got on ``path``."""
    return [
        alert
        for body in receiver.bodies(path)
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "task_overdue"
    ]


@asynccontextmanager
async def running_alerts(
    tmp_path: Path,
    nats_url: str,
    receiver: Receiver,
    *,
    rules: str | None = None,
    clock: Clock | None = None,
    data_dir: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningAlerts]:
    """The alerts app in-process (real broker, SQLite) until the block ends."""
    data = data_dir or tmp_path / "alerts-data"
    oncall_file = tmp_path / "oncall.yaml"
    oncall_file.write_text(oncall(receiver))
    rules_file = None
    if rules is not None:
        rules_file = tmp_path / "rules.yaml"
        rules_file.write_text(rules)
    settings = AlertsSettings(
        nats_url=nats_url,
        data_dir=data,
        alerts_oncall_path=oncall_file,
        alerts_rules_path=rules_file,
        alerts_tasks_fetch_s=0.05,
        log_json=True,
        **overrides,
    )
    await migrate(settings)
    store = TokenStore.in_data_dir(data)
    token = store.create(
        scopes=["6401"], role=Role.OPERATE, name="city duty", person="陈静 (市指挥中心值班员)"
    )[1]
    store.close()
    clock = clock or Clock()
    bus = await nats.connect(nats_url)
    app = create_app(settings, clock=clock)
    try:
        async with LifespanManager(app, startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
                await eventually(
                    "ready", lambda: client.get("/readyz"), lambda r: r.status_code == 200
                )
                yield RunningAlerts(client, clock, token, bus)
    finally:
        await bus.close()
