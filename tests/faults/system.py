"""The whole system as real processes on loopback, plus the handles faults are injected by.

nats-server and the three services run through :class:`zhibao_cli.stack.Stack`
(the project's one way to start, kill and restart them); PostgreSQL, when a
scenario uses it, is a :class:`zhibao_shared.pgserver.LocalPostgres` of the
test's own (it gets restarted, so it cannot be the session-wide server).

Processes are (re)started from the main thread only: children die with the
thread that started them (``PR_SET_PDEATHSIG``), so a restart from a helper
thread would be undone when that thread ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nats
import yaml

from tests.faults.receiver import PagingReceiver
from tests.support.stream import stored_events, stored_messages
from zhibao_cli.stack import Stack
from zhibao_shared.events import event_identity
from zhibao_shared.natsserver import free_port
from zhibao_shared.pgserver import LocalPostgres, postgres_bin_dir
from zhibao_shared.subjects import EVENTS_STREAM
from zhibao_shared.tokens import Role, TokenStore

CITY = "6401"
PROVINCE = "64"
#: Seconds after which JetStream redelivers what a killed aggregator had fetched.
AGGREGATOR_ACK_WAIT_S = 5
#: A service's start-up is CPU-bound (imports): generous on a busy 2-core machine.
READY_TIMEOUT_S = 120.0


@dataclass
class System:
    """A running stack, its tokens, its on-call receiver and (maybe) its PostgreSQL."""

    stack: Stack
    report_token: str
    operate_token: str
    receiver: PagingReceiver
    postgres: LocalPostgres | None

    def url(self, name: str) -> str:
        """Base URL of a service."""
        return self.stack.url(name)

    def crash(self, name: str) -> None:
        """SIGKILL a service and start it again (same data, same port; the schema is
        current, so no migration step, as when a supervisor restarts a crashed process)."""
        self.stack.kill_service(name)
        self.stack.start_service(name, READY_TIMEOUT_S, migrate=False)

    def restart_nats(self) -> None:
        """Stop nats-server and start it again on the same port and JetStream store."""
        assert self.stack.nats is not None
        self.stack.nats.restart()

    def restart_postgres(self) -> None:
        """Fast-shutdown PostgreSQL (sessions cut) and start it again."""
        assert self.postgres is not None, "this scenario has no PostgreSQL"
        self.postgres.restart()

    def stream_contents(self) -> tuple[int, int, set[str]]:
        """The events stream: messages, events in them (bundles unpacked), distinct ids."""
        messages = stored_messages(self.stack.bus_url)
        events = stored_events(self.stack.bus_url)
        return (
            len(messages),
            len(events),
            {event_identity(e["subject"], e["source"], e["id"]) for _s, e in events},
        )

    def consumers_idle(self) -> dict[str, tuple[int, int]]:
        """Per durable consumer: (messages not yet delivered, delivered but not acked)."""
        return asyncio.run(_consumer_backlog(self.stack.bus_url))

    def stop(self) -> None:
        """Stop everything this system started."""
        self.stack.stop()
        if self.postgres is not None:
            self.postgres.stop()
            shutil.rmtree(self.postgres.root, ignore_errors=True)


async def _consumer_backlog(url: str) -> dict[str, tuple[int, int]]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        backlog = {}
        for durable in ("aggregator", "alerts"):
            info = await js.consumer_info(EVENTS_STREAM, durable)
            backlog[durable] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
        return backlog
    finally:
        await client.close()


def start_postgres() -> LocalPostgres:
    """A PostgreSQL server of the test's own with databases for the aggregator and alerts.

    Its directory is a fresh one under /tmp: pytest's own are not reachable by the
    ``postgres`` user the server runs as under root.
    """
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None, "PostgreSQL server binaries missing (bash tests/run.sh installs)"
    root = Path(tempfile.mkdtemp(prefix="zhibao-faults-pg-"))
    server = LocalPostgres(bin_dir, free_port(), root)
    server.start()
    asyncio.run(_create_databases(server.admin_dsn, ("aggregator", "alerts")))
    return server


async def _create_databases(admin_dsn: str, names: tuple[str, ...]) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_dsn)
    try:
        for name in names:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def database_url(server: LocalPostgres, name: str) -> str:
    """The asyncpg SQLAlchemy URL of a database on ``server``."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/{name}"


def write_oncall(path: Path, receiver_url: str) -> Path:
    """On-call configuration: every alert goes to the receiver (the catch-all webhook)."""
    path.write_text(yaml.safe_dump({"webhooks": [receiver_url], "group_wait_seconds": 1}), "utf-8")
    return path


def environment(data_dir: Path, oncall: Path, postgres: LocalPostgres | None) -> dict[str, str]:
    """The services' environment: free loopback ports, fast redelivery, no rate limit."""
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data_dir),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_LOG_LEVEL": "WARNING",
        "ZHIBAO_RATE_LIMIT_EVENTS_PER_S": "1000000",
        "ZHIBAO_RATE_LIMIT_BURST": "1000000",
        "ZHIBAO_AGGREGATOR_ACK_WAIT_S": str(AGGREGATOR_ACK_WAIT_S),
        "ZHIBAO_ALERTS_ONCALL_PATH": str(oncall),
    }
    if postgres is not None:
        env["ZHIBAO_AGGREGATOR_DATABASE_URL"] = database_url(postgres, "aggregator")
        env["ZHIBAO_ALERTS_DATABASE_URL"] = database_url(postgres, "alerts")
    return env


def start_system(root: Path, receiver: PagingReceiver, use_postgres: bool) -> System:
    """Start PostgreSQL (if asked), nats-server, intake, aggregator and alerts."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    postgres = start_postgres() if use_postgres else None
    env = environment(data_dir, write_oncall(root / "oncall.yaml", receiver.url), postgres)
    tokens = TokenStore.in_data_dir(data_dir)
    report = tokens.create(scopes=[CITY], role=Role.REPORT, name="faults-report")[1]
    operate = tokens.create(scopes=[PROVINCE], role=Role.OPERATE, name="faults-operate")[1]
    tokens.close()
    stack = Stack(env=env, data_dir=data_dir, nats_url=env["ZHIBAO_NATS_URL"], quiet=True)
    try:
        assert stack.nats is not None
        stack.nats.start()
        for name in stack.services:
            stack.start_service(name, READY_TIMEOUT_S)
    except BaseException:
        System(stack, report, operate, receiver, postgres).stop()
        raise
    return System(stack, report, operate, receiver, postgres)
