"""The email channel against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.raising import Routing
from zhibao_shared.consumer import Delivery
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.natsserver import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


async def test_the_on_call_person_gets_an_email(
    engine: AsyncEngine, clock: Clock, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    oncall = OnCall.model_validate(
        {
            "smtp": {"host": "127.0.0.1", "port": port, "sender": "alerts@zhibao.example"},
            "rotations": [
                {
                    "unit": COMMUNITY,
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": "grid worker", "email": "grid@zhibao.example"}],
                }
            ],
        }
    )
    routing = Routing(oncall, load_registry(), "http://aggregator")
    apply = ApplyEvents(engine, Rules, lambda: routing, "Asia/Shanghai", clock)

    async def no_nats(_s: str, _b: bytes) -> None:
        return None

    await apply([Delivery(confirmed(), "s", 1, 1)])
    assert await Dispatcher(engine, lambda: routing, no_nats, clock).tick() == 2
    [(recipients, message)] = inbox.messages
    assert recipients == ["grid@zhibao.example"]
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject.startswith("[critical]") and "确诊" in subject
    assert "rollup" in message.get_payload(decode=True).decode()
