"""The key-person register and the needs' figures: the register per community for its own
tokens only, counts by category at every level, needs open/overdue/median from the needs'
tasks (SQLite and PostgreSQL, real nats-server)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.aggregator.tasks_support import aggregator, eventually, publish_tasks
from tests.support.care_events import key_person, need, published
from tests.support.clock import latest_local_midday
from tests.support.events import screening
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.care_events import need_task_id
from zhibao_shared.events import event_identity
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import event_subject
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState, task_message
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

A, B = "640106001001", "640106001002"
STREET, DISTRICT = "640106001", "640106"
OLD, DIALYSIS, CHILD = "a" * 32, "b" * 32, "c" * 32
BUILDING = f"{A}-C001-B003"


def _at(now: datetime, minutes: float) -> datetime:
    return now - timedelta(minutes=minutes)


def _events(now: datetime) -> list[dict[str, Any]]:
    """Published key-person, need and contact events (some out of order)."""
    old = {"ref": "old"}
    placed = published(key_person(person=old, when=_at(now, 50), place=BUILDING), OLD)
    placed["data"] |= {"building_id": BUILDING, "compound_id": f"{A}-C001"}  # as intake adds
    events = [
        # registered 50 min ago; a removal stamped earlier arrives later and changes nothing
        placed,
        published(key_person(person=old, action="remove", when=_at(now, 55)), OLD),
        published(key_person(person=old, category="chronic_medicine", when=_at(now, 40)), OLD),
        published(
            key_person(person=old, category="chronic_medicine", action="remove", when=_at(now, 30)),
            OLD,
        ),
        published(
            key_person(
                person={"ref": "d"}, category="dialysis", when=_at(now, 45), building="3号楼"
            ),
            DIALYSIS,
        ),
        published(
            key_person(B, person={"ref": "c"}, category="child_unattended", when=_at(now, 45)),
            CHILD,
        ),
    ]
    contact = screening(person={"ref": "old"}, when=_at(now, 20))
    events.append(published(contact, OLD) | {"type": "zhibao.screening.v1"})
    return events


def _needs(now: datetime) -> dict[str, dict[str, Any]]:
    return {
        "done": published(need(person={"ref": "old"}, category="food", when=_at(now, 240)), OLD),
        "overdue": published(
            need(person={"ref": "d"}, category="medical", urgency="urgent", when=_at(now, 180)),
            DIALYSIS,
        ),
        "open": published(need(person={"ref": "old"}, category="medicine", when=_at(now, 10)), OLD),
    }


def _task_id(event: dict[str, Any]) -> str:
    return need_task_id(event_identity(event["subject"], event["source"], event["id"]))


def _tasks(needs: dict[str, dict[str, Any]], now: datetime) -> list[TaskMessage]:
    """The response service's messages about the needs' tasks: one done after 3 h."""
    limits = {"done": 24, "overdue": 2, "open": 24}
    out = []
    for name, event in needs.items():
        raised = datetime.fromisoformat(event["time"])
        fields: dict[str, Any] = {
            "task": _task_id(event),
            "unit": event["subject"],
            "kind": f"need_{event['data']['category']}",
            "due": raised + timedelta(hours=limits[name]),
            "pid": event["data"]["person"]["pid"],
            "urgency": event["data"]["urgency"],
        }
        out.append(task_message(TaskEvent.ISSUED, state=TaskState.ISSUED, at=raised, **fields))
        if name == "done":
            at = raised + timedelta(hours=3)
            out.append(task_message(TaskEvent.CHANGED, state=TaskState.DONE, at=at, **fields))
    return out


async def _publish_events(
    url: str, settings: AggregatorSettings, events: list[dict[str, Any]]
) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        for event in events:
            short = event["type"].split(".")[1]
            await js.publish(
                event_subject(event["subject"], short),
                json.dumps(event, ensure_ascii=False).encode(),
                headers={"Nats-Msg-Id": uuid.uuid4().hex},
            )
    finally:
        await client.close()


def _token(settings: AggregatorSettings, scope: str) -> dict[str, str]:
    tokens = TokenStore.in_data_dir(settings.data_dir)
    try:
        secret = tokens.create(scopes=[scope], role=Role.READ, name=f"reader {scope}")[1]
    finally:
        tokens.close()
    return {"authorization": f"Bearer {secret}"}


async def test_register_counts_and_needs_at_every_level(
    nats_server: NatsServer, tmp_path: Path, database: str
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        aggregator_database_url=database,
        aggregator_ack_wait_s=300,
        _env_file=None,
    )
    now = latest_local_midday()  # the need done 1 h ago falls on today's local day
    needs = _needs(now)
    await _publish_events(nats_server.url, settings, [*_events(now), *needs.values()])
    await publish_tasks(nats_server.url, _tasks(needs, now))
    day = Calendar.named(settings.timezone).day(now).isoformat()
    own, district = _token(settings, A), _token(settings, DISTRICT)
    async with aggregator(settings) as running:
        figures = await eventually(
            "the needs and the register counted",
            lambda: running.rollup(A, day),
            lambda f: f.get("needs_open") == 2 and f.get("key_persons", {}).get("dialysis") == 1,
        )
        assert figures["key_persons"] == {"dialysis": 1, "elderly_alone": 1}
        assert (figures["needs_open"], figures["needs_overdue"]) == (2, 1)
        assert figures["needs_median_hours"] == 3.0
        assert figures["tasks_open"] >= figures["needs_open"]  # needs are tasks
        for code in (STREET, DISTRICT):
            above = await running.rollup(code, day)
            assert above["key_persons"] == {
                "child_unattended": 1,
                "dialysis": 1,
                "elderly_alone": 1,
            }
            assert (above["needs_open"], above["needs_overdue"]) == (2, 1)
        answer = await running.client.get(f"/v1/units/{A}/key-persons", headers=own)
        assert answer.status_code == 200, answer.text
        register = {(r["pid"], r["category"]): r for r in answer.json()["key_persons"]}
        assert set(register) == {(OLD, "elderly_alone"), (DIALYSIS, "dialysis")}
        elderly = register[(OLD, "elderly_alone")]
        assert (elderly["building_id"], elderly["open_needs"]) == (BUILDING, 1)
        assert datetime.fromisoformat(elderly["since"]) == _at(now, 50)
        assert datetime.fromisoformat(elderly["last_contact"]) == _at(now, 20)
        dialysis = register[(DIALYSIS, "dialysis")]
        assert (dialysis["building"], dialysis["open_needs"], dialysis["last_contact"]) == (
            "3号楼",
            1,
            None,
        )
        assert answer.json()["counts"] == {"dialysis": 1, "elderly_alone": 1}
        refused = await running.client.get(f"/v1/units/{A}/key-persons", headers=district)
        assert refused.status_code == 403, refused.text
        other = await running.client.get(f"/v1/units/{B}/key-persons", headers=own)
        assert other.status_code == 403
        street_answer = await running.client.get(
            f"/v1/units/{STREET}/key-persons", headers=district
        )
        assert street_answer.status_code == 422
        rollup_json = json.dumps(await running.rollup(DISTRICT, day))
        assert OLD not in rollup_json and DIALYSIS not in rollup_json


async def test_no_key_persons_is_an_empty_mapping(nats_server: NatsServer, tmp_path: Path) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, _env_file=None
    )
    async with aggregator(settings) as running:
        figures = await running.rollup(A)
        assert figures["key_persons"] == {}
        assert (figures["needs_open"], figures["needs_overdue"]) == (0, 0)
        assert figures["needs_median_hours"] is None
        answer = await running.client.get(f"/v1/units/{A}/key-persons", headers=_token(settings, A))
        assert answer.json() == {"unit": A, "key_persons": [], "counts": {}}
