"""The whole system running as ``zhibao up`` runs it, with every bus message recorded.

A client subscribed as the operator to ``>`` records each message (subject,
payload, headers, reply subject) while events are posted over HTTP, submitted
over NATS request-reply, a confirmed case raises an alert, rollups are
published, a task is issued through the response service, a response level and an
epidemic point are declared and lifted there, and the operator injects one
undecodable message, which both consumers park as dead letters.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg

from tests.support.events import COMMUNITY_A, COMMUNITY_B, case, resident_id, screening
from tests.support.nats import community_system
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.subjects import INTAKE_SUBMIT
from zhibao_shared.tokens import Role, TokenStore

#: What the operator injects into the events stream: no consumer can decode it.
POISON = b"not an event"
POISON_SUBJECT = f"zhibao.events.640106.{COMMUNITY_A}.screening"


@dataclass(frozen=True)
class Seen:
    """One message observed on the bus."""

    subject: str
    data: bytes
    headers: dict[str, str]
    reply: str


@dataclass
class BusTap:
    """A client subscribed to ``>`` as the operator, in a thread of its own."""

    url: str
    messages: list[Seen] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe; returns once the server has registered the subscription."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("the bus tap could not subscribe")

    async def _run(self) -> None:
        client = await nats.connect(self.url)

        async def record(msg: Msg) -> None:
            headers = dict(msg.headers or {})
            self.messages.append(Seen(msg.subject, msg.data, headers, msg.reply))

        await client.subscribe(">", cb=record)
        await client.flush()
        self._ready.set()
        await asyncio.to_thread(self._stop.wait)
        await client.drain()

    def stop(self) -> None:
        """Unsubscribe and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def seen(self, prefix: str) -> bool:
        """True once a message whose subject starts with ``prefix`` was recorded."""
        return any(m.subject.startswith(prefix) for m in list(self.messages))

    def distinct(self, suffix: str) -> int:
        """How many different payloads were recorded on subjects ending with ``suffix``
        (a stream's consumers get its messages again, on the same subjects)."""
        return len({m.data for m in list(self.messages) if m.subject.endswith(suffix)})


@dataclass(frozen=True)
class BusRun:
    """What a run of the system put on the bus, and the stack (still running)."""

    stack: Stack
    messages: list[Seen]


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up after {timeout_s:.0f}s waiting for {what}")


def stack_env(root: Path) -> dict[str, str]:
    """A stack of its own: free ports, fast rollup publishing, alerts sent at once."""
    oncall = root / "oncall.yaml"
    oncall.write_text("group_wait_seconds: 0\n")
    alerts_port = free_port()
    return {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(root / "data"),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_INTAKE_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_ALERTS_PORT": str(alerts_port),
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_ALERTS_URL": f"http://127.0.0.1:{alerts_port}",
        "ZHIBAO_ALERTS_ONCALL_PATH": str(oncall),
        "ZHIBAO_AGGREGATOR_PUBLISH_INTERVAL_S": "0.2",
    }


async def _submit_over_nats(url: str, token: str) -> None:
    """As the community ingress user: one accepted submission, one without a token."""
    client = await community_system(url)
    try:
        body = json.dumps(screening(COMMUNITY_B)).encode()
        await client.request(INTAKE_SUBMIT, body, timeout=15, headers={"Authorization": token})
        await client.request(INTAKE_SUBMIT, body, timeout=15)
    finally:
        await client.drain()


async def _inject_poison(url: str) -> None:
    """As the operator: store a message no consumer can decode."""
    client = await nats.connect(url)
    try:
        await client.jetstream().publish(POISON_SUBJECT, POISON, headers={"Nats-Msg-Id": "poison"})
    finally:
        await client.drain()


def issue_task(stack: Stack, operator: str) -> None:
    """A task pushed down to a community through the response service."""
    task = {
        "unit": COMMUNITY_A,
        "kind": "verify_contact",
        "due": "2030-01-01T12:00:00+08:00",
        "person": {"id_number": resident_id(seq=321)},
    }
    answer = httpx.post(
        f"{stack.url('response')}/v1/tasks",
        json=[task],
        headers={"authorization": f"Bearer {operator}"},
    )
    assert answer.status_code == 201, answer.text


def _operate(stack: Stack, operator: str, path: str, body: dict[str, str]) -> Any:
    """POST ``body`` to the response service as the command centre; its answer's JSON."""
    answer = httpx.post(
        f"{stack.url('response')}{path}", json=body, headers={"authorization": f"Bearer {operator}"}
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def declare_and_lift(stack: Stack, operator: str) -> None:
    """A response level declared and lifted, an epidemic point declared and lifted: two
    level messages (one with a level, one lifted: null) and two point messages."""
    for level in ("blue", "none"):
        body = {"unit": COMMUNITY_A, "level": level, "reason": "asyncapi test"}
        _operate(stack, operator, "/v1/levels", body)
    body = {"unit": COMMUNITY_A, "compound": "枫林湾一期", "reason": "确诊病例住所"}
    point = _operate(stack, operator, "/v1/points", body)
    _operate(stack, operator, f"/v1/points/{point['id']}/lift", {"reason": "14天无新增病例"})


def drive(stack: Stack, token: str) -> None:
    """Events over HTTP (alone and as a batch), a confirmed case, NATS submissions, poison."""
    bearer = f"Bearer {token}"
    intake = stack.url("intake")
    single = httpx.post(f"{intake}/v1/events", json=screening(), headers={"authorization": bearer})
    assert single.status_code == 202, single.text
    batch = [screening(COMMUNITY_A, temperature=38.2), screening(COMMUNITY_B)]
    confirmed = case(person={"id_number": resident_id()}, classification="confirmed")
    answer = httpx.post(
        f"{intake}/v1/events", json=[*batch, confirmed], headers={"authorization": bearer}
    )
    assert answer.status_code == 202, answer.text
    asyncio.run(_submit_over_nats(stack.user_url("community"), bearer))
    asyncio.run(_inject_poison(stack.bus_url))


@contextmanager
def recorded_run(root: Path) -> Iterator[BusRun]:
    """Start the system, record the bus while driving traffic until every kind of
    message has been seen; stop it all on exit."""
    env = stack_env(root)
    data = Path(env["ZHIBAO_DATA_DIR"])
    tokens = TokenStore.in_data_dir(data)
    token = tokens.create(scopes=["640106"], role=Role.REPORT, name="asyncapi test")[1]
    operator = tokens.create(scopes=["640106"], role=Role.OPERATE, name="asyncapi tasks")[1]
    stack = Stack(env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], quiet=True)
    try:
        with stack:
            tap = BusTap(stack.bus_url)
            tap.start()
            try:
                drive(stack, token)
                issue_task(stack, operator)
                declare_and_lift(stack, operator)
                prefixes = ("zhibao.rollups.", "zhibao.alerts.", "zhibao.audit.", "zhibao.tasks.")
                for prefix in prefixes:
                    wait_until(prefix, partial(tap.seen, prefix))
                wait_until("both dead letters", lambda: _dead_letters(tap) == 2)
                wait_until("both level messages", lambda: tap.distinct(".level") == 2)
                wait_until("both point messages", lambda: tap.distinct(".point") == 2)
                yield BusRun(stack, list(tap.messages))
            finally:
                tap.stop()
    finally:
        tokens.close()


def _dead_letters(tap: BusTap) -> int:
    return sum(1 for m in list(tap.messages) if m.subject.startswith("zhibao.deadletter."))
