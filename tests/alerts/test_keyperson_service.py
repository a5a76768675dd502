"""The running alerts service watches key persons through its consumers: a key person
and a screening on the events stream, an epidemic point and a task done on the tasks
stream (its durable ``alerts-care``), the periodic check on the service's clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.conftest import Clock
from tests.alerts.task_support import COMMUNITY, RunningAlerts, eventually, running_alerts
from tests.alerts.test_keyperson_contact import RULE, P, key_person, screened
from tests.support.webhook import Receiver
from zhibao_shared.bus_access import care_durable
from zhibao_shared.events import PublishedEvent, published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.response_events import PointMessage, point_subject
from zhibao_shared.subjects import EVENTS_STREAM, TASKS_STREAM, event_subject
from zhibao_shared.task_events import TaskEvent, TaskState, task_message

pytestmark = pytest.mark.timeout(120)


async def _events(service: RunningAlerts, *events: PublishedEvent) -> None:
    js = service.bus.jetstream()
    for event in events:
        subject = event_subject(event.subject, event.type.split(".")[1])
        await js.publish(subject, published_payload(event), stream=EVENTS_STREAM)


async def _no_contact(service: RunningAlerts, *states: str) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"unit": COMMUNITY, "state": list(states or ("firing",))}
    answer = await service.client.get("/v1/alerts", params=params, headers=service.auth())
    assert answer.status_code == 200, answer.text
    return [a for a in answer.json()["alerts"] if a["rule"] == RULE]


async def test_a_key_person_in_an_epidemic_point_is_alerted_on_and_a_delivery_resolves_it(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    clock = Clock()
    clock.now -= timedelta(days=10)  # events may not lie ahead of the real clock
    async with running_alerts(tmp_path, nats_server.url, webhook, clock=clock) as service:
        seen = clock.now - timedelta(days=3)
        await _events(service, key_person(P, seen), screened(P, seen))
        point = PointMessage(
            event="point_declared",
            point="ab" * 16,
            unit=COMMUNITY,
            compound="枫林湾小区",
            building="3号楼",
            start=clock.now,
            declared_at=clock.now,
            declared_by="district duty",
        )
        js = service.bus.jetstream()
        await js.publish(
            point_subject(COMMUNITY), point.model_dump_json().encode(), stream=TASKS_STREAM
        )
        consumer = await js.consumer_info(TASKS_STREAM, care_durable("alerts"))
        assert consumer.config.durable_name == "alerts-care"
        await eventually(
            "the point and the person applied",
            lambda: js.consumer_info(TASKS_STREAM, care_durable("alerts")),
            lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
        )
        clock.advance(hours=25)
        [alert] = await eventually("the no-contact alert", lambda: _no_contact(service), bool)
        assert "枫林湾 3号楼" in alert["summary_zh"] and "疫点封控中" in alert["summary_zh"]
        await eventually(
            "the community's page",
            lambda: [
                b for b in webhook.bodies("/community") if b["groupLabels"]["alertname"] == RULE
            ],
            bool,
        )

        delivered = task_message(
            TaskEvent.CHANGED,
            task="cd" * 16,
            unit=COMMUNITY,
            kind="need_food",
            due=clock.now + timedelta(hours=1),
            state=TaskState.DONE,
            pid=P,
            at=clock.now,
        )
        await service.publish(delivered)
        [resolved] = await eventually(
            "the resolution", lambda: _no_contact(service, "resolved"), bool
        )
        assert resolved["id"] == alert["id"]
