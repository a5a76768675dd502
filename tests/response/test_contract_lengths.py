"""No value the contract or the response API admits can fail a database write (issue 13).

On SQLite and PostgreSQL, through the service's own paths (its HTTP API; the events it
reads from the bus), every stored text at its longest, in Chinese where admitted (three
bytes a character in UTF-8), is read back whole:

* a task issued with the longest kind, note, compound, contact and person reference,
  assigned to a worker of the longest name, and closed by a task result (the longest
  id, source and reporter, every measure, a 500-character note sealed for the service);
* a need with 64-character compound, building and grid labels, becoming a task;
* a level declared with a 500-character reason naming 200 compounds of 64 characters;
* an epidemic point with 64-character labels, a 500-character reason and measures of
  the longest description, lifted with a 500-character reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.response.conftest import Harness, a_task
from tests.response.test_levels import declare, playbook, service
from tests.response.test_needs import publish, task_id_of
from tests.support.care_events import need, published
from tests.support.events import COMMUNITY_A
from tests.support.postgres import both_backends
from tests.support.task_results import task_result
from zhibao_shared.events import (
    MAX_ID_LENGTH,
    MAX_SOURCE_LENGTH,
    MAX_TASK_NOTE,
    TaskMeasure,
)
from zhibao_shared.note_sealing import NoteSealer
from zhibao_shared.pseudonym import pseudonym_key
from zhibao_shared.subjects import event_subject

pytestmark = pytest.mark.integration

__all__ = ["playbook", "service"]  # fixtures of test_levels: red closes named compounds

database = both_backends("response")

LABEL = 64
COMPOUND, BUILDING, GRID = "苑" * LABEL, "栋" * LABEL, "格" * LABEL
#: The longest free texts the API admits (a task's note, a reason).
NOTE = "注" * MAX_TASK_NOTE
REASON = "因" * 500
#: The longest task kind the contract admits (``TASK_KIND_PATTERN``: 40 characters).
KIND = "k" + "_" * 38 + "z"
PID = "cd" * 16


def longest_identity(document: dict[str, Any], n: int) -> dict[str, Any]:
    """``document`` with a Chinese id and source of the longest lengths."""
    source = f"/{document['subject']}/".ljust(MAX_SOURCE_LENGTH, "源")
    return document | {"id": str(n).rjust(MAX_ID_LENGTH, "编"), "source": source}


async def test_a_task_with_the_longest_values_is_issued_assigned_and_closed_whole(
    service: Harness,
) -> None:
    contact = {"name": "张" * 64, "phone": "+" + "1" * 23, "address": "址" * 200}
    task = a_task(
        kind=KIND,
        note=NOTE,
        compound=COMPOUND,
        contact=contact,
        person={"ref": "编" * 128},
    )
    issued = await service.issue([task])
    assert issued.status_code == 201, issued.text
    [task_id] = issued.json()["ids"]
    shown = await service.task(task_id, "community_a")
    assert (shown["kind"], shown["compound"], shown["details"]) == (KIND, COMPOUND, "shown")
    assert (shown["note"], shown["contact"]) == (NOTE, contact)
    assert shown["person"] == {"ref": "编" * 128}

    worker = "网" * 64
    assigned = await service.client.post(
        f"/v1/tasks/{task_id}/assign", json={"worker": worker}, headers=service.auth("community_a")
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["worker"] == worker

    note = "访" * MAX_TASK_NOTE
    sealer = NoteSealer(pseudonym_key(None, service.settings.data_dir))
    reported = longest_identity(task_result(task_id, measures=[m.value for m in TaskMeasure]), 1)
    reported["data"] |= {
        "until": (datetime.now(UTC) + timedelta(days=14)).date().isoformat(),
        "person": {"pid": PID},
        "kind": KIND,
        "sealed_note": sealer.seal(task_id, note),
    }
    body = reported | {"reporter": "报" * 64, "receivedat": reported["time"]}
    payload = json.dumps(body, ensure_ascii=False).encode()
    await publish(
        service.settings.nats_url, (event_subject(COMMUNITY_A, "task_result"), payload, None)
    )
    done = await service.eventually(
        "the result applied",
        lambda: service.task(task_id, "community_a"),
        lambda found: found["state"] == "done",
    )
    assert done["worker"] == worker
    assert [h["worker"] for h in done["history"] if h["action"] == "assigned"] == [worker]
    [result] = [h["result"] for h in done["history"] if h["result"] is not None]
    assert (result["note"], result["note_status"], result["applied"]) == (note, "shown", True)
    assert result["measures"] == [m.value for m in TaskMeasure]


async def test_a_need_with_the_longest_labels_becomes_a_task(service: Harness) -> None:
    document = longest_identity(
        need(
            person={"ref": "r-1"},
            category="psychological",
            urgency="urgent",
            compound=COMPOUND,
            building=BUILDING,
            grid=GRID,
        ),
        2,
    )
    payload = json.dumps(published(document, PID), ensure_ascii=False).encode()
    await publish(service.settings.nats_url, (event_subject(COMMUNITY_A, "need"), payload, None))
    task_id = task_id_of(document)

    async def listed() -> dict[str, Any]:
        return {task["id"]: task for task in await service.tasks(COMMUNITY_A, "community_a")}

    found = (await service.eventually("the need's task", listed, lambda t: task_id in t))[task_id]
    assert (found["kind"], found["compound"], found["urgency"]) == (
        "need_psychological",
        COMPOUND,
        "urgent",
    )


async def test_a_level_with_the_longest_reason_naming_200_of_the_longest_compounds(
    service: Harness,
) -> None:
    compounds = [str(n).rjust(LABEL, "苑") for n in range(200)]
    declared = await declare(
        service, unit=COMMUNITY_A, level="red", reason=REASON, compounds=compounds
    )
    assert (declared["reason"], declared["compounds"]) == (REASON, compounds)
    assert len(declared["tasks_issued"]) == 201  # each compound's gates, one testing round
    tasks = await service.tasks(COMMUNITY_A, "community_a", limit="500")
    assert sorted(t["compound"] for t in tasks if t["kind"] == "close_gates") == sorted(compounds)
    answer = await service.client.get(f"/v1/levels/{COMMUNITY_A}", headers=service.auth("district"))
    assert answer.status_code == 200, answer.text
    [shown] = answer.json()["history"]
    assert (shown["reason"], shown["compounds"]) == (REASON, compounds)


async def test_a_point_with_the_longest_labels_reasons_and_descriptions(
    service: Harness,
) -> None:
    measures = [
        {
            "kind": KIND,
            "applies_to": "compounds",
            "deadline_hours": 24,
            "description": "消" * 200,
        }
    ]
    answer = await service.client.post(
        "/v1/points",
        json={
            "unit": COMMUNITY_A,
            "compound": COMPOUND,
            "building": BUILDING,
            "reason": REASON,
            "measures": measures,
        },
        headers=service.auth("district"),
    )
    assert answer.status_code == 201, answer.text
    point = answer.json()
    assert (point["compound"], point["building"], point["reason"]) == (COMPOUND, BUILDING, REASON)
    [task] = await service.tasks(COMMUNITY_A, "community_a")
    assert (task["kind"], task["compound"]) == (KIND, COMPOUND)

    lift_reason = "解" * 500
    lifted = await service.client.post(
        f"/v1/points/{point['id']}/lift",
        json={"reason": lift_reason},
        headers=service.auth("district"),
    )
    assert lifted.status_code == 200, lifted.text
    listed = await service.client.get(
        "/v1/points", params={"unit": COMMUNITY_A}, headers=service.auth("district")
    )
    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["points"]
    assert (shown["compound"], shown["building"]) == (COMPOUND, BUILDING)
    assert (shown["reason"], shown["lift_reason"]) == (REASON, lift_reason)
    assert [m["description"] for m in shown["measures"]] == ["消" * 200]
