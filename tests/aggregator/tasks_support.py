"""Helpers of the task rollup tests: task messages as the response service publishes them,
and the aggregator running in-process against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import nats
from asgi_lifespan import LifespanManager

from zhibao_aggregator.bootstrap import create_app
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, tasks_stream_config
from zhibao_shared.subjects import TASKS_STREAM, task_subject
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState, task_message
from zhibao_shared.tokens import Role, TokenStore

KIND = "verify_companion"
#: The pseudonym every test task carries (it must never reach a page or a rollup).
PID = "e" * 32


def message(
    task: str,
    event: TaskEvent,
    state: TaskState,
    unit: str,
    at: datetime,
    due: datetime,
    from_unit: str | None = None,
) -> TaskMessage:
    """A task message (no pseudonym needed for rollups)."""
    return task_message(
        event,
        task=task,
        unit=unit,
        kind=KIND,
        due=due,
        state=state,
        pid=PID,
        at=at,
        from_unit=from_unit,
    )


def task_id(n: int) -> str:
    """A task id (32 lowercase hex)."""
    return f"{n:032x}"


async def publish_tasks(url: str, messages: Sequence[TaskMessage]) -> None:
    """Publish to the tasks stream as the response service does; each publication has its
    own message id, so a message published twice is stored (and delivered) twice."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, tasks_stream_config(AggregatorSettings(_env_file=None)))
        for m in messages:
            event = m.event.removeprefix("task_")
            await js.publish(
                task_subject(m.unit, event),
                m.model_dump_json().encode(),
                headers={"Nats-Msg-Id": uuid.uuid4().hex},
                stream=TASKS_STREAM,
            )
    finally:
        await client.close()


@dataclass
class Running:
    """The aggregator app in-process, with a read token for the whole city."""

    client: httpx.AsyncClient
    settings: AggregatorSettings

    async def rollup(self, code: str, day: str | None = None) -> dict[str, Any]:
        """A unit's figures."""
        params = {"date": day} if day else {}
        answer = await self.client.get(f"/v1/units/{code}/rollup", params=params)
        assert answer.status_code == 200, answer.text
        figures: dict[str, Any] = answer.json()["figures"]
        return figures

    async def get(self, path: str) -> httpx.Response:
        """Any read route."""
        return await self.client.get(path)


async def eventually(
    what: str, read: Callable[[], Awaitable[Any]], condition: Callable[[Any], bool]
) -> Any:
    """``read()`` until ``condition`` holds of its answer (at most 30 s)."""
    for _ in range(600):
        answer = await read()
        if condition(answer):
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}: last {answer!r}")


@asynccontextmanager
async def aggregator(settings: AggregatorSettings) -> AsyncIterator[Running]:
    """The migrated aggregator app running (consuming) until the block ends."""
    await migrate(settings.database_url())
    tokens = TokenStore.in_data_dir(settings.data_dir)
    secret = tokens.create(scopes=["6401"], role=Role.READ, name="task rollup test")[1]
    tokens.close()
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://aggregator",
            headers={"authorization": f"Bearer {secret}"},
        ) as client:
            await eventually(
                "the aggregator ready",
                lambda: client.get("/readyz"),
                lambda r: r.status_code == 200,
            )
            yield Running(client, settings)
