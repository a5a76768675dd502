"""Response service fixtures: the app in-process on a driven clock, a real nats-server
(the bus tapped), SQLite or PostgreSQL, and tokens at several levels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
import sqlalchemy as sa
from alembic import op
from alembic.migration import MigrationContext
from alembic.operations import Operations
from asgi_lifespan import LifespanManager
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.support.events import COMMUNITY_A, COMMUNITY_B, resident_id
from zhibao_response.bootstrap import create_app
from zhibao_response.domain.results import Reporter, TaskResult
from zhibao_response.settings import ResponseSettings
from zhibao_response.store import TaskStore
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.task_events import TaskState
from zhibao_shared.tokens import Role, TokenStore

DISTRICT = "640106"
STREET = "640106001"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Tap:
    """Every task message seen on the bus."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)

    async def record(self, msg: Msg) -> None:
        self.messages.append((msg.subject, msg.data))

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        """The decoded messages (of one event: issued, changed, overdue)."""
        return [
            json.loads(data)
            for subject, data in list(self.messages)
            if event is None or subject.endswith(f".{event}")
        ]

    async def wait_for(
        self, what: str, condition: Callable[[], bool], timeout_s: float = 20
    ) -> None:
        """Poll until ``condition`` holds."""
        for _ in range(int(timeout_s / 0.05)):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what}")


@dataclass
class Harness:
    """The running service, its clock, the bus tap and tokens."""

    client: httpx.AsyncClient
    clock: Clock
    tap: Tap
    tokens: dict[str, str]
    settings: ResponseSettings

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    async def issue(self, tasks: list[dict[str, Any]], who: str = "district") -> httpx.Response:
        return await self.client.post("/v1/tasks", json=tasks, headers=self.auth(who))

    async def tasks(self, unit: str, who: str, **params: str) -> list[dict[str, Any]]:
        answer = await self.client.get(
            "/v1/tasks", params={"unit": unit, **params}, headers=self.auth(who)
        )
        assert answer.status_code == 200, answer.text
        tasks: list[dict[str, Any]] = answer.json()["tasks"]
        return tasks

    async def task(self, task_id: str, who: str) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/tasks/{task_id}", headers=self.auth(who))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def eventually(
        self,
        what: str,
        read: Callable[[], Awaitable[dict[str, Any]]],
        condition: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any]:
        """``read()`` again until its answer meets ``condition`` (the loops run every 50 ms)."""
        for _ in range(400):
            answer = await read()
            if condition(answer):
                return answer
            await asyncio.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what}")

    async def change(self, task_id: str, who: str, **body: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/tasks/{task_id}/state", json=body, headers=self.auth(who)
        )


def a_task(
    unit: str = COMMUNITY_A, *, due_in_h: float = 24, now: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    """A valid task with personal details."""
    due = (now or datetime.now(UTC)) + timedelta(hours=due_in_h)
    return {
        "unit": unit,
        "kind": "verify_companion",
        "due": due.isoformat(),
        "person": {"id_number": resident_id(seq=456)},
        "contact": {"name": "张秀兰", "phone": "13912345678", "address": "枫林湾 3-2-501"},
        "note": "时空伴随, 核查14天行程",
        **extra,
    }


def done_result(task_id: str, key: str = "result-1") -> TaskResult:
    """A community's result for ``task_id``: done, on a visit (applied straight to the store)."""
    return TaskResult(
        key=key,
        stream_sequence=1,
        task=task_id,
        reporter_unit=COMMUNITY_A,
        outcome="done",
        wanted=TaskState.DONE,
        to_unit=None,
        method="visit",
        measures=(),
        sealed_note=None,
        actor=Reporter("grid-worker", "report-token"),
    )


TOKENS = {
    "district": ([DISTRICT], Role.OPERATE),
    "community_a": ([COMMUNITY_A], Role.OPERATE),
    "community_b": ([COMMUNITY_B], Role.OPERATE),
    "street_reader": ([STREET], Role.READ),
    "street": ([STREET], Role.OPERATE),
    "city": (["6401"], Role.OPERATE),
    "province_reader": (["64"], Role.READ),
    "other_district": (["640104"], Role.OPERATE),
    "reporter_a": ([COMMUNITY_A], Role.REPORT),
}


@pytest.fixture(params=["sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The service's database URL (SQLite unless a test asks for PostgreSQL too)."""
    return sqlite_url(tmp_path, "response")


async def start(
    tmp_path: Path, nats_url: str, database: str, **overrides: Any
) -> AsyncIterator[Harness]:
    """The service running in-process until the caller is done."""
    data_dir = tmp_path / "data"
    checks_often = {"response_check_interval_s": 0.05, "response_reload_s": 0.05}
    settings = ResponseSettings(
        data_dir=data_dir,
        nats_url=nats_url,
        response_database_url=database,
        log_json=True,
        **(checks_often | overrides),
    )
    await run_migrations(database, "zhibao_response")
    store = TokenStore.in_data_dir(data_dir)
    tokens = {
        name: store.create(scopes=scopes, role=role, name=name)[1]
        for name, (scopes, role) in TOKENS.items()
    }
    store.close()
    clock = Clock()
    tap = Tap()
    bus: Client = await nats.connect(nats_url)
    await bus.subscribe("zhibao.tasks.>", cb=tap.record)
    app = create_app(settings, clock=clock)
    # shutdown drains the outbox for up to ZHIBAO_SHUTDOWN_GRACE_S (15 s): asgi-lifespan's
    # default 5 s cut a slow drain short (once in a CI run, on PostgreSQL)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://response") as client:
            harness = Harness(client, clock, tap, tokens, settings)
            for _ in range(200):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            yield harness
    try:
        await bus.drain()
    except nats.errors.Error:  # the test restarted the server: still reconnecting
        await bus.close()


@pytest.fixture
async def service(tmp_path: Path, nats_server: NatsServer, database: str) -> AsyncIterator[Harness]:
    """The response service on ``database`` with the shipped playbook."""
    async for harness in start(tmp_path, nats_server.url, database):
        yield harness


#: The time of the stores :func:`sqlite_store` makes.
STORE_NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[TaskStore]:
    """A task store on a migrated SQLite file, its clock standing at :data:`STORE_NOW`."""
    url = sqlite_url(tmp_path, "response")
    await run_migrations(url, "zhibao_response")
    engine = make_engine(url)
    try:
        yield TaskStore(engine, lambda: STORE_NOW)
    finally:
        await engine.dispose()


async def columns_after_upgrade(
    tmp_path: Path, table: str, column: str, revision: str
) -> list[str]:
    """The columns of ``table`` after migrating to the head a database set back to
    ``revision`` without ``column`` (as a database of before that column stands: the
    revision that creates ``table`` does so from the current definition)."""
    url = sqlite_url(tmp_path, "response-old")
    await run_migrations(url, "zhibao_response")
    engine = make_engine(url)

    def set_back(sync: sa.Connection) -> None:
        context = Operations.context(MigrationContext.configure(sync))
        with context, op.batch_alter_table(table) as batch:
            batch.drop_column(column)
        sync.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})

    try:
        async with engine.begin() as conn:
            await conn.run_sync(set_back)
        await run_migrations(url, "zhibao_response")
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: [c["name"] for c in sa.inspect(sync).get_columns(table)]
            )
    finally:
        await engine.dispose()
