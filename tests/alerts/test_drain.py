"""A stopping alerts service finishes the page it is sending and records it: the
instance after it does not page again once the lease runs out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.alerts.conftest import publish_confirmed
from tests.support.webhook import Receiver
from zhibao_alerts.bootstrap import build, migrate
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.tables import alerts, notifications
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration


async def test_a_stop_while_a_page_is_being_sent_records_it(
    nats_server: NatsServer, webhook: Receiver, tmp_path: Path
) -> None:
    oncall = tmp_path / "oncall.yaml"
    oncall.write_text(f"webhooks: ['{webhook.url}/all']\n")
    settings = AlertsSettings(
        nats_url=nats_server.url, data_dir=tmp_path / "data", alerts_oncall_path=oncall
    )
    await migrate(settings)
    await publish_confirmed(nats_server.url)
    webhook.release.clear()  # the receiver holds the page until released
    service = build(settings)
    await service.connect()
    assert await asyncio.to_thread(webhook.arrived.wait, 30), "the case was paged"

    closing = asyncio.create_task(service.close())
    await asyncio.wait(service.draining)  # the consumers have stopped: then the dispatcher
    await asyncio.sleep(0.2)
    webhook.release.set()
    await asyncio.wait_for(closing, 30)

    engine = make_engine(settings.database_url())
    try:
        async with engine.connect() as conn:
            outbox = (await conn.execute(_CASE_OUTBOX)).all()
    finally:
        await engine.dispose()
    # the webhook's page and the alert's message on NATS, each recorded once sent
    assert {tuple(row) for row in outbox} == {("sent", 1)}, "recorded, not paged again later"
    assert len(outbox) == 2


#: The confirmed case's notifications (the watchdog may add a missing daily report's).
_CASE_OUTBOX = (
    select(notifications.c.status, notifications.c.attempts)
    .join(alerts, alerts.c.id == notifications.c.alert_id)
    .where(alerts.c.rule == "immediate_confirmed")
)
