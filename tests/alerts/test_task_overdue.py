"""task_overdue: a task the response service announces overdue raises an alert for its
community that escalates like any other, is acknowledged through the usual path and
resolves itself when its tasks are closed or transferred. The alerts app runs with a real
nats-server and real webhook receivers; task messages go through the tasks stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.alerts.task_support import (
    COMMUNITY,
    NEIGHBOUR,
    PID,
    STREET,
    RunningAlerts,
    eventually,
    new_task_id,
    pages,
    running_alerts,
)
from tests.support.webhook import Receiver
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import DEAD_LETTER_STREAM, TASKS_STREAM
from zhibao_shared.task_events import TaskState
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.timeout(120)


async def _one_alert(service: RunningAlerts, what: str, tasks: int) -> dict[str, Any]:
    """The community's one open task_overdue alert, once it lists ``tasks`` tasks."""
    [alert] = await eventually(what, service.alerts, lambda found: len(found) == 1)
    detail: dict[str, Any] = await eventually(
        what,
        lambda: service.detail(int(alert["id"])),
        lambda answer: len(answer["tasks"]) == tasks,
    )
    return detail


async def test_one_alert_per_community_day_and_kind_paged_once_despite_redelivery(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    """Two companion verifications of a day overdue, each message delivered twice: one
    alert naming the tasks (ids, kind, due time, community; no pseudonym), one page; a
    task of another kind is an alert of its own."""
    async with running_alerts(tmp_path, nats_server.url, webhook) as service:
        first = service.overdue(new_task_id())
        await service.publish(first)
        await eventually("the page", lambda: pages(webhook, "/community"), bool)
        detail = await _one_alert(service, "the alert", 1)
        assert detail["unit"] == COMMUNITY and detail["state"] == "firing"
        assert detail["severity"] == "warning"
        due = first.due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
        assert first.task in detail["summary_en"] and due in detail["summary_en"]
        assert "verify_companion" in detail["summary_zh"]
        assert PID not in json.dumps(detail)

        second = service.overdue(new_task_id(), due=first.due)
        for message in (first, second, second):  # redelivered, as a resend past dedup
            await service.publish(message)
        detail = await _one_alert(service, "the second task", 2)
        assert {t["task"] for t in detail["tasks"]} == {first.task, second.task}
        assert {t["state"] for t in detail["tasks"]} == {"overdue"}
        assert "2 verify_companion tasks" in detail["summary_en"]
        assert detail["occurrences"] == 2

        other = service.overdue(new_task_id(), kind="disinfect", due=first.due)
        await service.publish(other)
        found = await eventually("the other kind", service.alerts, lambda a: len(a) == 2)
        assert sorted(str(a["window"]).split(":")[1] for a in found) == [
            "disinfect",
            "verify_companion",
        ]
        await eventually("its page", lambda: pages(webhook, "/community"), lambda p: len(p) == 2)
    community_pages = pages(webhook, "/community")
    assert len(community_pages) == 2, "one page per alert, none for a repeat or a 2nd task"
    assert PID not in json.dumps(webhook.bodies("/community"))


async def test_unacknowledged_it_reaches_the_street_then_is_acknowledged_and_resolves(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    """The street's duty officer is paged once the community's 30 minutes pass; their
    acknowledgement is recorded; the alert resolves itself when its tasks are done and
    transferred, and says so in its timeline."""
    async with running_alerts(tmp_path, nats_server.url, webhook) as service:
        done, moved = service.overdue(new_task_id()), service.overdue(new_task_id())
        await service.publish(done)
        await service.publish(moved)
        detail = await _one_alert(service, "the alert", 2)
        alert_id = int(detail["id"])
        await eventually("the community page", lambda: pages(webhook, "/community"), bool)
        assert pages(webhook, "/street") == []

        service.clock.advance(minutes=31)
        await eventually("the street page", lambda: pages(webhook, "/street"), bool)
        detail = await service.detail(alert_id)
        assert [e["action"] for e in detail["timeline"]][-1] == "escalated"

        store = TokenStore.in_data_dir(tmp_path / "alerts-data")
        street = store.create(
            scopes=[STREET], role=Role.OPERATE, name="street duty", person="刘洋 (街道值班员)"
        )[1]
        store.close()
        ack = await service.client.post(f"/v1/alerts/{alert_id}/ack", headers=service.auth(street))
        assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"

        service.clock.advance(minutes=5)
        await service.publish(service.changed(done, TaskState.DONE))
        detail = await eventually(
            "the first task closed",
            lambda: service.detail(alert_id),
            lambda d: {t["state"] for t in d["tasks"]} == {"done", "overdue"},
        )
        assert detail["state"] == "acknowledged"
        assert moved.task in detail["summary_en"] and done.task not in detail["summary_en"]

        await service.publish(service.changed(moved, TaskState.TRANSFERRED, to=NEIGHBOUR))
        detail = await eventually(
            "the resolution", lambda: service.detail(alert_id), lambda d: d["state"] == "resolved"
        )
        actions = [(e["action"], e["actor"]) for e in detail["timeline"]]
        assert ("acknowledged", "street duty") in actions
        assert actions[-1] == ("resolved", "system")
        reason = detail["timeline"][-1]["detail"]
        assert "done 1" in reason and "transferred 1" in reason
        moved_task = next(t for t in detail["tasks"] if t["task"] == moved.task)
        assert moved_task["state"] == "transferred" and moved_task["to_unit"] == NEIGHBOUR
        assert await service.alerts() == []

        # overdue again in the community it moved to: an alert there, not a reopened one
        await service.publish(service.overdue(moved.task, unit=NEIGHBOUR, due=moved.due))
        await eventually("the new unit's alert", lambda: service.alerts(NEIGHBOUR), bool)
        assert await service.alerts() == []


async def test_only_the_districts_of_the_partition_are_read_and_bad_messages_are_parked(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    """A partition for 640106 raises nothing for a task of 640104; a message that is not a
    task message goes to the dead letters and does not hold up the next one."""
    async with running_alerts(
        tmp_path, nats_server.url, webhook, alerts_districts=["640106"], alerts_durable="a-640106"
    ) as service:
        await service.publish(service.overdue(new_task_id(), unit="640104001001"))
        js = service.bus.jetstream()
        garbage = f"zhibao.tasks.640106.{COMMUNITY}.overdue"
        await js.publish(garbage, b"not json", stream=TASKS_STREAM)
        await service.publish(service.overdue(new_task_id()))
        await eventually("640106's alert", service.alerts, bool)
        assert await service.alerts("640104") == []
        info = await js.consumer_info(TASKS_STREAM, "a-640106-tasks")
        assert info.config.filter_subjects == [
            f"zhibao.tasks.{place}.*.{event}"
            for place in ("640106", "6401", "64")  # the city's and province's own tasks too
            for event in ("overdue", "changed")
        ]
        assert info.num_pending == 0
        parked = await js.stream_info(DEAD_LETTER_STREAM)
        assert parked.state.messages == 1


async def test_severity_and_paging_per_kind_come_from_the_rules(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    """close_gates is critical; deliver is recorded without paging or escalating."""
    rules = (
        "task_overdue:\n  severity: warning\n"
        "  kinds: {close_gates: {severity: critical}, deliver: {page: false}}\n"
    )
    async with running_alerts(tmp_path, nats_server.url, webhook, rules=rules) as service:
        await service.publish(service.overdue(new_task_id(), kind="deliver"))
        [quiet] = await eventually(
            "the recorded alert", lambda: service.alerts(COMMUNITY, "recorded"), bool
        )
        assert quiet["severity"] == "warning"
        await service.publish(service.overdue(new_task_id(), kind="close_gates"))
        [gates] = await eventually("the critical alert", service.alerts, bool)
        assert gates["severity"] == "critical" and gates["state"] == "firing"
        await eventually("its page", lambda: pages(webhook, "/community"), bool)
        service.clock.advance(minutes=40)
        await eventually("the escalation", lambda: pages(webhook, "/street"), bool)
        detail = await service.detail(int(quiet["id"]))
        assert detail["state"] == "recorded" and detail["notifications"] == []
    paged = {p["labels"]["severity"] for p in pages(webhook, "/community")}
    assert paged == {"critical"}, "the deliver task paged nobody"
