"""End to end on one nats-server: the response service issues a task, its clock passes the
due time, its overdue message raises task_overdue in the alerts service, the community is
paged, and the community closing the task resolves the alert. Nothing personal crosses."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.alerts.task_support import COMMUNITY, eventually, pages, running_alerts
from tests.response.conftest import a_task
from tests.response.conftest import start as start_response
from tests.support.events import resident_id
from tests.support.webhook import Receiver
from zhibao_shared.db import sqlite_url
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.timeout(120)

PERSONAL = ("张秀兰", "13912345678", "枫林湾 3-2-501", resident_id(seq=456), "时空伴随")


async def test_a_task_issued_overdue_then_done_raises_and_resolves_its_alert(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    response_service = asynccontextmanager(start_response)
    database = sqlite_url(tmp_path, "response")
    async with (
        running_alerts(tmp_path, nats_server.url, webhook) as alerts,
        response_service(tmp_path, nats_server.url, database) as response,
    ):
        task = a_task(COMMUNITY, due_in_h=1, now=response.clock.now, kind="disinfect")
        issued = await response.issue([task])
        assert issued.status_code == 201, issued.text
        [task_id] = issued.json()["ids"]
        assert await alerts.alerts() == [], "not overdue yet"

        response.clock.advance(hours=2)
        [alert] = await eventually("the task_overdue alert", alerts.alerts, bool)
        detail = await alerts.detail(int(alert["id"]))
        [listed] = detail["tasks"]
        assert listed["task"] == task_id and listed["kind"] == "disinfect"
        assert listed["unit"] == COMMUNITY and listed["state"] == "overdue"
        assert task_id in detail["summary_en"] and detail["unit"] == COMMUNITY
        await eventually("the community's page", lambda: pages(webhook, "/community"), bool)

        closed = await response.change(task_id, "community_a", state="done")
        assert closed.status_code == 200, closed.text
        detail = await eventually(
            "the resolution",
            lambda: alerts.detail(int(alert["id"])),
            lambda d: d["state"] == "resolved",
        )
        assert detail["tasks"][0]["state"] == "done"
        assert "done 1" in detail["timeline"][-1]["detail"]
    shown = json.dumps([detail, webhook.received], ensure_ascii=False)
    assert [value for value in PERSONAL if value in shown] == []
