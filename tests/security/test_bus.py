"""Attacks on the bus of `zhibao up`: a local process without credentials, or with one
service's credentials, cannot forge, read, answer, erase or freeze.

The system runs as `zhibao up` runs it (cli/src/zhibao_cli/stack.py): nats-server with the
users of zhibao_shared.bus_access and the generated passwords, and the three services as
processes under their own users. Each attack asserts the server refused it (a permissions
violation or an authorisation error) and, as the operator, that nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig

from tests.support.events import COMMUNITY_A, case, resident_id, screening
from zhibao_cli.stack import Stack
from zhibao_shared.bus_access import inbox_prefix
from zhibao_shared.bus_credentials import CREDENTIALS_FILE, bus_dir
from zhibao_shared.natsserver import free_port
from zhibao_shared.subjects import AUDIT_STREAM, EVENTS_STREAM, INTAKE_SUBMIT
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

SERVICE_USERS = ("intake", "aggregator", "alerts", "dashboard")
FORGED_CASE = f"zhibao.events.640106.{COMMUNITY_A}.case"
#: Errors a refused request surfaces as: the server drops it, so no answer comes.
REFUSED = (nats.errors.Error, nats.js.errors.Error, TimeoutError)


@dataclass
class System:
    """`zhibao up`'s stack and a report token for COMMUNITY_A."""

    stack: Stack
    data_dir: Path
    env: dict[str, str]
    token: str


def _env(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(free_port()),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
    }


def _system(root: Path) -> Iterator[System]:
    data = root / "data"
    env = _env(data)
    tokens = TokenStore.in_data_dir(data)
    token = tokens.create(scopes=[COMMUNITY_A], role=Role.REPORT, name="gate")[1]
    tokens.close()
    stack = Stack(env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], quiet=True)
    with stack:
        yield System(stack, data, env, token)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system, once for the module's attacks (none of which may succeed)."""
    yield from _system(tmp_path_factory.mktemp("bus"))


class Attacker:
    """A NATS connection that records what the server refused."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client: Client | None = None

    async def connect(self, url: str, **options: object) -> Client:
        """Connect once, without reconnecting."""

        async def record(exc: Exception) -> None:
            self.errors.append(str(exc).lower())

        self.client = await nats.connect(
            url, error_cb=record, allow_reconnect=False, connect_timeout=3, **options
        )
        return self.client

    async def refused(self, kind: str, subject: str) -> bool:
        """True once the server reported a permissions violation for ``subject``."""
        assert self.client is not None
        for _ in range(40):
            await self.client.flush(timeout=2)
            if any(kind in e and subject.lower() in e for e in self.errors):
                return True
            await asyncio.sleep(0.05)
        return False


@pytest.fixture
async def attackers() -> AsyncIterator[list[Attacker]]:
    """Connections closed after the test."""
    opened: list[Attacker] = []
    yield opened
    for attacker in opened:
        if attacker.client is not None and not attacker.client.is_closed:
            await attacker.client.close()


async def as_user(system: System, attackers: list[Attacker], user: str) -> tuple[Attacker, Client]:
    """Connected with one bus user's real credentials (what a process holding them can do)."""
    attacker = Attacker()
    attackers.append(attacker)
    client = await attacker.connect(system.stack.user_url(user), inbox_prefix=inbox_prefix(user))
    return attacker, client


async def stream_state(system: System, stream: str) -> tuple[int, StreamConfig]:
    """(messages, config) of a stream, read as the operator."""
    client = await nats.connect(system.stack.bus_url)
    try:
        info = await client.jetstream().stream_info(stream)
        return int(info.state.messages), info.config
    finally:
        await client.close()


async def consumers(system: System) -> dict[str, list[str]]:
    """Durable consumers of the events stream and their filters, read as the operator."""
    client = await nats.connect(system.stack.bus_url)
    try:
        found = await client.jetstream().consumers_info(EVENTS_STREAM)
        return {
            str(c.name): list(c.config.filter_subjects or [c.config.filter_subject or ""])
            for c in found
        }
    finally:
        await client.close()


async def test_no_anonymous_access_and_no_guessing(system: System) -> None:
    """The bare address refuses a client without credentials, or with a wrong password."""
    address = system.stack.nats_url
    for url in (address, address.replace("nats://", "nats://intake:wrong@")):
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0
            )


async def test_credentials_are_readable_by_their_owner_only(system: System) -> None:
    """The generated passwords and the server's configuration are owner-only files, in a
    data directory (event store, databases, logs, keys) only its owner can enter."""
    folder = bus_dir(system.data_dir)
    assert stat.S_IMODE(system.data_dir.stat().st_mode) == 0o700, "the event store, databases"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in (folder / CREDENTIALS_FILE, folder / "nats-server.conf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    passwords = json.loads((folder / CREDENTIALS_FILE).read_text())
    assert set(passwords) >= {*SERVICE_USERS, "community", "ops"}
    assert len(set(passwords.values())) == len(passwords), "each user has its own password"


@pytest.mark.parametrize("user", ["community", "aggregator", "alerts", "dashboard"])
async def test_only_intake_can_put_a_case_on_the_bus(
    system: System, attackers: list[Attacker], user: str
) -> None:
    """A fake confirmed case published by anyone but intake is never stored (so never
    counted nor paged)."""
    before, _ = await stream_state(system, EVENTS_STREAM)
    attacker, client = await as_user(system, attackers, user)
    await client.publish(
        FORGED_CASE,
        json.dumps(case(person={"id_number": resident_id()}, classification="confirmed")).encode(),
    )
    assert await attacker.refused("permissions violation for publish", FORGED_CASE)
    with pytest.raises(REFUSED):
        await client.jetstream().publish(FORGED_CASE, b"{}", timeout=1)
    assert (await stream_state(system, EVENTS_STREAM))[0] == before


@pytest.mark.parametrize("user", ["community", "aggregator", "alerts", "dashboard"])
async def test_nobody_but_intake_reads_or_answers_submissions(
    system: System, attackers: list[Attacker], user: str
) -> None:
    """Requests on zhibao.intake.submit carry bearer tokens and raw ID numbers: no other
    user may subscribe to them (so none can read them or answer as intake); the
    community ingress user submits and gets intake's answer."""
    spy, spying = await as_user(system, attackers, user)
    overheard = await spying.subscribe(INTAKE_SUBMIT)
    assert await spy.refused("permissions violation for subscription", INTAKE_SUBMIT)

    _, community = await as_user(system, attackers, "community")
    event = screening(person={"id_number": resident_id()})
    reply = await community.request(
        INTAKE_SUBMIT,
        json.dumps(event).encode(),
        timeout=10,
        headers={"Authorization": f"Bearer {system.token}"},
    )
    assert json.loads(reply.data)["status"] == 202
    with pytest.raises(nats.errors.TimeoutError):
        await overheard.next_msg(timeout=0.5)


@pytest.mark.parametrize("service", ["intake", "aggregator", "alerts"])
async def test_the_ingress_user_cannot_read_a_services_replies(
    system: System, attackers: list[Attacker], service: str
) -> None:
    """Each service gets its replies (JetStream acks, fetched events) on its own inbox
    prefix, which the community ingress user may not subscribe to."""
    spy, client = await as_user(system, attackers, "community")
    await client.subscribe(f"{inbox_prefix(service)}.>")
    assert await spy.refused("permissions violation for subscription", inbox_prefix(service))


async def test_the_ingress_user_cannot_overhear_the_deliveries_to_the_services(
    system: System, attackers: list[Attacker]
) -> None:
    """JetStream delivers a service's events, task messages and audit records to its inbox
    under their own subjects, which a deny of ``_INBOX.<service>.>`` under an allowed
    ``_INBOX.>`` did not match: a community system subscribed to ``_INBOX.>`` received
    every district's events and the whole audit trail. It may subscribe under its own
    prefix only, and still gets intake's answers there."""
    spy, client = await as_user(system, attackers, "community")
    await client.subscribe("_INBOX.>")
    assert await spy.refused("permissions violation for subscription", "_INBOX.>")
    reply = await client.request(
        INTAKE_SUBMIT,
        json.dumps(screening()).encode(),
        timeout=10,
        headers={"Authorization": f"Bearer {system.token}"},
    )
    assert json.loads(reply.data)["status"] == 202


@pytest.mark.parametrize("user", ["intake", "aggregator", "alerts", "community", "dashboard"])
async def test_no_service_user_can_erase_or_change_the_streams(
    system: System, attackers: list[Attacker], user: str
) -> None:
    """Deleting, purging or reconfiguring the events or audit stream, or deleting an audit
    record, is the operator's alone: intake cannot shorten its own audit trail."""
    _, client = await as_user(system, attackers, user)
    js = client.jetstream(timeout=1)
    for stream in (EVENTS_STREAM, AUDIT_STREAM):
        before = await stream_state(system, stream)
        with pytest.raises(REFUSED):
            await js.purge_stream(stream)
        with pytest.raises(REFUSED):
            await js.delete_msg(stream, 1)
        changed = StreamConfig(
            name=stream, subjects=before[1].subjects, max_msgs=1, deny_delete=False
        )
        with pytest.raises(REFUSED):
            await js.update_stream(changed)
        with pytest.raises(REFUSED):
            await js.delete_stream(stream)
        after = await stream_state(system, stream)
        assert after[0] == before[0]
        assert after[1].max_msgs == before[1].max_msgs
        assert after[1].deny_delete == before[1].deny_delete


@pytest.mark.parametrize(("user", "victim"), [("alerts", "aggregator"), ("aggregator", "alerts")])
async def test_no_service_can_delete_or_freeze_anothers_consumer(
    system: System, attackers: list[Attacker], user: str, victim: str
) -> None:
    """A service can neither delete another's durable consumer nor repoint its filter
    at nothing (which would freeze that service)."""
    before = await consumers(system)
    assert victim in before
    _, client = await as_user(system, attackers, user)
    js = client.jetstream(timeout=1)
    with pytest.raises(REFUSED):
        await js.delete_consumer(EVENTS_STREAM, victim)
    frozen = ConsumerConfig(
        durable_name=victim, name=victim, filter_subject="zhibao.events.nowhere.>"
    )
    with pytest.raises(REFUSED):
        await js.add_consumer(EVENTS_STREAM, frozen)
    assert await consumers(system) == before


def test_bus_url_gives_the_operator_what_services_cannot(system: System) -> None:
    """`zhibao bus-url` prints a URL with the operator's credentials: it connects and
    may inspect the streams."""
    printed = subprocess.run(
        [sys.executable, "-m", "zhibao_cli", "bus-url"],
        env=system.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert printed.startswith("nats://ops:")

    async def streams() -> list[str]:
        client = await nats.connect(printed, allow_reconnect=False, connect_timeout=3)
        try:
            return sorted(str(s.config.name) for s in await client.jetstream().streams_info())
        finally:
            await client.close()

    assert {EVENTS_STREAM, AUDIT_STREAM} <= set(asyncio.run(streams()))


def _ready(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=5).status_code


def _status_within(url: str, status: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    seen = _ready(url)
    while seen != status and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _ready(url)
    return seen


def test_readiness_fails_when_a_consumer_or_the_stream_is_gone(tmp_path: Path) -> None:
    """An operator deleting the aggregator's durable consumer, then the events stream,
    makes /readyz of the aggregator, then of alerts, fail: they consume nothing."""
    for system in _system(tmp_path):
        aggregator, alerts = system.stack.url("aggregator"), system.stack.url("alerts")
        assert _ready(aggregator) == _ready(alerts) == 200

        async def delete(what: str, url: str = system.stack.bus_url) -> None:
            client = await nats.connect(url)
            try:
                js = client.jetstream()
                if what == "consumer":
                    await js.delete_consumer(EVENTS_STREAM, "aggregator")
                else:
                    await js.delete_stream(EVENTS_STREAM)
            finally:
                await client.close()

        asyncio.run(delete("consumer"))
        assert _status_within(aggregator, 503, 10) == 503
        assert _ready(alerts) == 200
        asyncio.run(delete("stream"))
        assert _status_within(alerts, 503, 10) == 503
