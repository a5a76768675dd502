"""A task result read twice (resent alone, repeated in a bundle) changes its task once;
a result for a task closed already is recorded in its history and changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from tests.response.conftest import Harness, a_task
from tests.support.events import COMMUNITY_A
from zhibao_shared.events import bundle_payload
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.pseudonym import pseudonym_key
from zhibao_shared.subjects import bundle_subject, event_subject

pytestmark = pytest.mark.integration

NOTE = "王小明的母亲接的电话"


def published(task: str, *, note: str | None = None, sealer: NoteSealer | None = None) -> bytes:
    """A task result as intake publishes it (person and kind added, the note sealed)."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "task": task,
        "outcome": "done",
        "method": "visit",
        "measures": ["tested"],
        "person": None,
        "kind": "verify_companion",
    }
    if note is not None and sealer is not None:
        data["sealed_note"] = sealer.seal(task, note)
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"result-{uuid.uuid4().hex}",
            "source": f"/{COMMUNITY_A}/worker-app",
            "type": "zhibao.task_result.v1",
            "subject": COMMUNITY_A,
            "time": (now - timedelta(seconds=5)).isoformat(),
            "data": data,
            "reporter": "reporter-token-id",
            "receivedat": now.isoformat(),
        },
        ensure_ascii=False,
    ).encode()


def screening() -> bytes:
    """Another event of the district, as bundles hold them."""
    now = datetime.now(UTC)
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"s-{uuid.uuid4().hex}",
            "source": f"/{COMMUNITY_A}/gate-1",
            "type": "zhibao.screening.v1",
            "subject": COMMUNITY_A,
            "time": (now - timedelta(seconds=5)).isoformat(),
            "data": {"temperature_c": 36.6, "site": "gate"},
            "reporter": "gate",
            "receivedat": now.isoformat(),
        }
    ).encode()


async def test_a_result_delivered_twice_is_applied_once(service: Harness) -> None:
    issued = await service.issue([a_task(), a_task(), a_task()])
    first, second, sentinel = issued.json()["ids"]
    sealer = NoteSealer(pseudonym_key(None, service.settings.data_dir))
    result = published(first, note=NOTE, sealer=sealer)
    single = event_subject(COMMUNITY_A, "task_result")
    bus = await nats.connect(service.settings.nats_url)
    js = bus.jetstream()
    try:
        await js.publish(single, result, headers={"Nats-Msg-Id": "a"})
        await js.publish(bundle_subject("640106"), bundle_payload([screening(), result]))
        await js.publish(single, published(first), headers={"Nats-Msg-Id": "late"})
        await js.publish(bundle_subject("640106"), bundle_payload([screening()]))
        await js.publish(single, published(sentinel), headers={"Nats-Msg-Id": "sentinel"})
    finally:
        await bus.drain()
    await service.eventually(
        "the sentinel applied",
        lambda: service.task(sentinel, "district"),
        lambda task: task["state"] == "done",
    )
    task = await service.task(first, "community_a")
    assert task["state"] == "done"
    assert [(h["action"], h["state"]) for h in task["history"]] == [
        ("issued", "issued"),
        ("done", "done"),
        ("result", "done"),  # the later result: recorded, the task stays as it was
    ]
    applied, late = task["history"][1]["result"], task["history"][2]["result"]
    assert (applied["applied"], applied["note"], applied["method"]) == (True, NOTE, "visit")
    assert (late["applied"], late["note_status"]) == (False, "none")
    assert (await service.task(second, "district"))["state"] == "issued"
    assert "reporter-token-id" in {h["by"] for h in task["history"]}
    withheld = (await service.task(first, "street_reader"))["history"][1]["result"]
    assert (withheld["note"], withheld["note_status"]) == (None, "withheld")
