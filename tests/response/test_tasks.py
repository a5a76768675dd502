"""Tasks pushed down to communities: issued all-or-nothing, details private, states tracked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from sqlalchemy import select

from tests.response.conftest import (
    DISTRICT,
    STREET,
    Harness,
    a_task,
    columns_after_upgrade,
    start,
)
from tests.support.events import COMMUNITY_A, COMMUNITY_B, resident_id
from tests.support.postgres import both_backends
from zhibao_response.tables import tasks
from zhibao_shared.db import make_engine
from zhibao_shared.events import ResidentIdPerson
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.pseudonym import Pseudonymiser, pseudonym_key
from zhibao_shared.subjects import TASKS_STREAM, task_subject

pytestmark = pytest.mark.integration
PERSONAL = ("张秀兰", "13912345678", "枫林湾 3-2-501", "时空伴随", resident_id(seq=456))


database = both_backends("response")


async def test_issued_tasks_reach_the_bus_with_a_pseudonym_only(
    service: Harness, database: str
) -> None:
    answer = await service.issue([a_task(), a_task(COMMUNITY_B, person={"ref": "A-17"})])
    assert answer.status_code == 201, answer.text
    ids = answer.json()["ids"]
    assert len(ids) == 2 and len(set(ids)) == 2
    await service.tap.wait_for("two issued messages", lambda: len(service.tap.bodies()) == 2)
    issued = {m["task"]: m for m in service.tap.bodies("issued")}
    assert set(issued) == set(ids)
    key = pseudonym_key(None, service.settings.data_dir)
    expected = Pseudonymiser(key).pseudonym(
        ResidentIdPerson(id_number=resident_id(seq=456)), COMMUNITY_A
    )
    first = issued[ids[0]]
    assert first["person"] == {"pid": expected.pid}
    assert first["unit"] == COMMUNITY_A and first["kind"] == "verify_companion"
    assert set(first) == {
        "event",
        "task",
        "unit",
        "from_unit",
        "kind",
        "due",
        "state",
        "person",
        "requires_visit",
        "urgency",
        "at",
    }
    assert first["urgency"] is None  # only a need's task has one
    assert "result" not in first  # only a change a task result made names it
    assert first["requires_visit"] is True  # verify_companion: the default visit-only kind
    everything = b"".join(data for _, data in service.tap.messages).decode()
    assert not [value for value in PERSONAL if value in everything]
    # at rest: the stored row holds none of the personal values in the clear
    engine = make_engine(database)
    try:
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT * FROM tasks")).all()
    finally:
        await engine.dispose()
    stored = repr(rows).encode() + b"".join(
        bytes(v) for row in rows for v in row if isinstance(v, bytes | memoryview)
    )
    assert not [v for v in PERSONAL if v.encode() in stored]


async def test_the_community_and_the_issuer_see_the_details_others_do_not(
    service: Harness,
) -> None:
    [task_id] = (await service.issue([a_task()])).json()["ids"]
    mine = await service.task(task_id, "community_a")
    assert mine["details"] == "shown"
    assert mine["contact"]["phone"] == "13912345678"
    assert mine["person"] == {"id_number": resident_id(seq=456)}
    assert (await service.task(task_id, "district"))["details"] == "shown"  # the issuer
    street = await service.tasks(STREET, "street_reader")
    assert [t["details"] for t in street] == ["withheld"]
    assert "contact" not in street[0]
    outsider = await service.client.get(f"/v1/tasks/{task_id}", headers=service.auth("community_b"))
    assert outsider.status_code == 403


async def test_only_the_assigned_community_sees_the_persons_pseudonym(service: Harness) -> None:
    """Else an issuing token is an oracle: name a guessed ID number, read back its
    pseudonym, find it on a need's task or in an alert's key."""
    [probe] = (await service.issue([a_task()])).json()["ids"]
    [need] = (await service.issue([a_task()], "community_a")).json()["ids"]
    assert (await service.task(probe, "district"))["person_pid"] is None  # the issuer
    listed = await service.tasks(DISTRICT, "district")
    assert {t["id"]: t["person_pid"] for t in listed} == {probe: None, need: None}
    assert {t["person_pid"] for t in await service.tasks(STREET, "street_reader")} == {None}
    key = pseudonym_key(None, service.settings.data_dir)
    pid = Pseudonymiser(key).pseudonym(ResidentIdPerson(id_number=resident_id(seq=456)), "")
    assert (await service.task(probe, "community_a"))["person_pid"] == pid.pid
    assert (await service.task(need, "community_a"))["person_pid"] == pid.pid


async def test_a_tasks_compound_has_phone_numbers_masked_and_no_resident_id(
    service: Harness,
) -> None:
    answer = await service.issue([a_task(compound="枫林湾(楼长 139 1234 5678)")])
    assert answer.status_code == 201, answer.text
    [task_id] = answer.json()["ids"]
    assert (await service.task(task_id, "district"))["compound"] == "枫林湾(楼长 [phone])"
    refused = await service.issue([a_task(compound=f"枫林湾{resident_id(seq=7)}")])
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]["problems"]
    assert (problem["index"], problem["field"]) == (0, "compound")
    assert "resident ID" in problem["message"]


async def test_a_body_json_cannot_hold_is_a_400_not_a_500(service: Harness) -> None:
    huge = b'[{"unit": "' + COMMUNITY_A.encode() + b'", "x": ' + b"9" * 5000 + b"}]"
    answer = await service.client.post("/v1/tasks", content=huge, headers=service.auth("district"))
    assert answer.status_code == 400, answer.text
    assert "digits" in answer.json()["detail"]


async def test_a_request_retried_with_its_idempotency_key_issues_nothing_twice(
    service: Harness,
) -> None:
    """A command centre whose connection broke after the tasks were committed sends the
    request again: with the same Idempotency-Key it gets the same tasks, not a second set."""
    batch = [a_task(), a_task(COMMUNITY_B, kind="disinfect")]

    async def send(tasks: list[dict[str, Any]], key: str, who: str = "district") -> httpx.Response:
        headers = {**service.auth(who), "Idempotency-Key": key}
        return await service.client.post("/v1/tasks", json=tasks, headers=headers)

    first, concurrent = await asyncio.gather(send(batch, "req-1"), send(batch, "req-1"))
    assert {first.status_code, concurrent.status_code} == {201}
    ids = first.json()["ids"]
    assert concurrent.json()["ids"] == ids and len(set(ids)) == 2
    again = await send(batch, "req-1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    listed = await service.tasks(DISTRICT, "district")
    assert sorted(t["id"] for t in listed) == sorted(ids)
    await service.tap.wait_for("two issued messages", lambda: len(service.tap.bodies()) >= 2)
    assert sorted(m["task"] for m in service.tap.bodies("issued")) == sorted(ids)

    other = await send([a_task(kind="disinfect")], "req-1")
    assert other.status_code == 422 and "Idempotency-Key" in other.text
    someone_else = [a_task(person={"id_number": resident_id(seq=5)}), batch[1]]
    someone_else[0]["due"] = batch[0]["due"]
    reused = await send(someone_else, "req-1")
    assert reused.status_code == 422, "another person under the same key is another request"
    city = await send(batch, "req-1", "city")  # another token's key names its own request
    assert city.status_code == 201 and set(city.json()["ids"]).isdisjoint(ids)
    assert (await send(batch, "bad key")).status_code == 400


async def test_a_key_reused_with_another_contact_note_or_unit_is_another_request(
    service: Harness,
) -> None:
    """The same key, tasks that differ only in what the task row does not show (the
    contact, the note: sealed) or in their community: another request, refused; the
    same request after its task moved by a transfer is still a retry."""
    task = a_task(kind="verify_contact")

    async def send(tasks: list[dict[str, Any]]) -> httpx.Response:
        headers = {**service.auth("district"), "Idempotency-Key": "req-2"}
        return await service.client.post("/v1/tasks", json=tasks, headers=headers)

    first = await send([task])
    assert first.status_code == 201, first.text
    contact = {**task["contact"], "phone": "13900000000"}
    for changed in ({"contact": contact}, {"note": "另一位密接"}, {"unit": COMMUNITY_B}):
        answer = await send([{**task, **changed}])
        assert answer.status_code == 422, (changed, answer.text)
    [task_id] = first.json()["ids"]
    moved = await service.change(task_id, "community_a", state="transferred", to=COMMUNITY_B)
    assert moved.status_code == 200, moved.text
    again = await send([task])
    assert (again.status_code, again.json()["ids"]) == (201, [task_id])


async def test_a_street_may_not_change_the_state_of_a_task_its_district_issued(
    service: Harness,
) -> None:
    """Concealment pressure sits low in the hierarchy (the seed studies): a street closing
    its district's tasks would make them look done. The community the task is with, and
    command centres at the issuing level or above, may change it."""
    [by_district, by_city] = (
        await service.issue([a_task(kind="verify_contact")]),
        await service.issue([a_task(kind="verify_contact")], "city"),
    )
    district_task, city_task = by_district.json()["ids"][0], by_city.json()["ids"][0]
    refused = await service.change(district_task, "street", state="done")
    assert refused.status_code == 403 and "640106" in refused.json()["detail"]
    assert (await service.change(city_task, "district", state="refused")).status_code == 403
    assert (await service.change(district_task, "community_a", state="accepted")).status_code == 200
    assert (await service.change(district_task, "district", state="done")).status_code == 200
    assert (await service.change(city_task, "city", state="unreachable")).status_code == 200
    [own] = (await service.issue([a_task(kind="verify_contact")], "community_a")).json()["ids"]
    assert (await service.change(own, "street", state="done")).status_code == 200


async def test_a_database_of_before_request_fingerprints_gains_the_column(
    tmp_path: Path,
) -> None:
    """0007 adds ``tasks.request_fingerprint`` to an older database (null: a retry of such
    a task is compared by kind, due time, person and compound, as before)."""
    columns = await columns_after_upgrade(
        tmp_path, "tasks", "request_fingerprint", "0006_task_issuer_scope"
    )
    assert "request_fingerprint" in columns


async def test_a_database_of_before_issuer_levels_gains_the_column(tmp_path: Path) -> None:
    """0006 adds ``tasks.issuer_scope`` to an older database (null: any command centre
    above may change such a task, as before)."""
    columns = await columns_after_upgrade(
        tmp_path, "tasks", "issuer_scope", "0005_point_declared_scope"
    )
    assert "issuer_scope" in columns


async def test_a_batch_with_bad_tasks_issues_nothing_and_names_each_problem(
    service: Harness,
) -> None:
    bad_id = a_task(person={"id_number": resident_id(seq=456)[:-1] + "0"})
    naive_due = a_task(due="2030-01-01T08:00:00")
    unknown = a_task("640106999999")
    no_kind = a_task()
    del no_kind["kind"]
    bad_phone = a_task(contact={"phone": "call me maybe"})
    body = [a_task(), bad_id, naive_due, unknown, no_kind, bad_phone]
    answer = await service.issue(body)
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    found = {(p["index"], p["field"]) for p in problems}
    assert found == {
        (1, "person.id_number"),
        (2, "due"),
        (4, "kind"),
        (5, "contact.phone"),
    }
    assert all(p["rule"] for p in problems)
    assert resident_id(seq=456)[:-1] not in answer.text
    assert "call me maybe" not in answer.text
    # a batch that passes the field checks but names an unknown community
    answer = await service.issue([a_task(), unknown])
    assert answer.status_code == 422
    assert answer.json()["detail"]["problems"] == [
        {
            "index": 1,
            "field": "unit",
            "rule": "unknown_community",
            "message": "not a community of the registry",
        }
    ]
    assert await service.tasks(DISTRICT, "district") == []
    assert service.tap.messages == []
    for raw in (b"{", b"[" * 100_000, b"\xff"):
        answer = await service.client.post(
            "/v1/tasks", content=raw, headers=service.auth("district")
        )
        assert answer.status_code == 400


async def test_only_an_operate_token_covering_every_unit_may_issue(service: Harness) -> None:
    assert (await service.issue([a_task()], "other_district")).status_code == 403
    assert (await service.issue([a_task()], "street_reader")).status_code == 403
    assert (await service.issue([a_task(), a_task(COMMUNITY_B)], "community_a")).status_code == 403
    assert (await service.client.post("/v1/tasks", json=[a_task()])).status_code == 401
    assert await service.tasks(DISTRICT, "district") == []
    listing = await service.client.get(
        "/v1/tasks", params={"unit": COMMUNITY_B}, headers=service.auth("community_a")
    )
    assert listing.status_code == 403


async def test_a_workers_name_has_phone_numbers_masked_and_no_resident_id(
    service: Harness,
) -> None:
    """The worker is shown to every viewer above and kept in the history for ever."""
    [task_id] = (await service.issue([a_task(kind="verify_contact")])).json()["ids"]
    assign = f"/v1/tasks/{task_id}/assign"
    for worker in (f"张秀兰 {resident_id(seq=9)}", "网格员\n2026-12-07 伪造的一行"):
        refused = await service.client.post(
            assign, json={"worker": worker}, headers=service.auth("community_a")
        )
        assert refused.status_code == 422, (worker, refused.text)
    assigned = await service.client.post(
        assign, json={"worker": "网格员 李明 139-1234-5678"}, headers=service.auth("community_a")
    )
    assert assigned.status_code == 200, assigned.text
    assert (await service.task(task_id, "district"))["worker"] == "网格员 李明 [phone]"


async def test_a_task_moves_through_its_states_with_its_history(service: Harness) -> None:
    # a kind that needs no visit: this route cannot complete one that does (test_visits)
    [task_id] = (await service.issue([a_task(kind="verify_contact")])).json()["ids"]
    assigned = await service.client.post(
        f"/v1/tasks/{task_id}/assign",
        json={"worker": "网格员 李明"},
        headers=service.auth("community_a"),
    )
    assert assigned.status_code == 200 and assigned.json()["worker"] == "网格员 李明"
    assert (await service.change(task_id, "community_a", state="accepted")).status_code == 200
    refused = await service.change(task_id, "community_a", state="issued")
    assert refused.status_code == 409
    service.clock.advance(hours=1)
    done = await service.change(task_id, "community_a", state="done")
    assert done.status_code == 200 and done.json()["state"] == "done"
    assert (await service.change(task_id, "community_a", state="refused")).status_code == 409
    task = await service.task(task_id, "district")
    history = [(h["action"], h["state"], h["by"]) for h in task["history"]]
    assert history == [
        ("issued", "issued", "district"),
        ("assigned", "issued", "community_a"),
        ("accepted", "accepted", "community_a"),
        ("done", "done", "community_a"),
    ]
    assert task["history"][-1]["at"] == service.clock.now.isoformat()
    assert await service.tasks(COMMUNITY_A, "community_a", state="done") != []
    assert await service.tasks(COMMUNITY_A, "community_a", state="issued") == []
    await service.tap.wait_for("changes", lambda: len(service.tap.bodies("changed")) == 2)
    assert [m["state"] for m in service.tap.bodies("changed")] == ["accepted", "done"]


async def test_a_transferred_task_moves_to_the_named_community(service: Harness) -> None:
    [task_id] = (await service.issue([a_task()])).json()["ids"]
    wrong = await service.change(task_id, "community_a", state="transferred")
    assert wrong.status_code == 422
    moved = await service.change(task_id, "community_a", state="transferred", to=COMMUNITY_B)
    assert moved.status_code == 200, moved.text
    assert await service.tasks(COMMUNITY_A, "community_a") == []
    [there] = await service.tasks(COMMUNITY_B, "community_b")
    assert there["id"] == task_id and there["state"] == "issued"
    assert there["details"] == "shown"  # the community it is assigned to now
    mine = await service.client.get(f"/v1/tasks/{task_id}", headers=service.auth("community_a"))
    assert mine.status_code == 403
    history = (await service.task(task_id, "community_b"))["history"]
    assert [(h["action"], h["unit"], h["from_unit"]) for h in history] == [
        ("issued", COMMUNITY_A, None),
        ("transferred", COMMUNITY_B, COMMUNITY_A),
    ]
    await service.tap.wait_for("the transfer", lambda: bool(service.tap.bodies("changed")))
    [message] = service.tap.bodies("changed")
    assert (message["state"], message["unit"], message["from_unit"]) == (
        "transferred",
        COMMUNITY_B,
        COMMUNITY_A,
    )
    subjects = [s for s, _ in service.tap.messages if s.endswith(".changed")]
    assert subjects == [f"zhibao.tasks.{DISTRICT}.{COMMUNITY_B}.changed"]
    assert (await service.change(task_id, "community_b", state="accepted")).status_code == 200


async def test_a_task_and_its_changes_are_on_the_stream_before_they_are_answered(
    service: Harness, nats_server: NatsServer
) -> None:
    """A community's result sent right after the answer must find the task on the stream
    intake reads (answered before the outbox published, such a result was refused
    ``unknown_task``)."""
    bus = await nats.connect(nats_server.url)
    js = bus.jetstream()

    async def last_task(unit: str, event: str) -> str:
        message = await js.get_last_msg(TASKS_STREAM, task_subject(unit, event))
        task: str = json.loads(message.data or b"{}")["task"]
        return task

    try:
        for _ in range(10):
            [task_id] = (await service.issue([a_task()])).json()["ids"]
            assert await last_task(COMMUNITY_A, "issued") == task_id
            moved = await service.change(
                task_id, "community_a", state="transferred", to=COMMUNITY_B
            )
            assert moved.status_code == 200, moved.text
            assert await last_task(COMMUNITY_B, "changed") == task_id
    finally:
        await bus.close()


async def test_overdue_tasks_are_looked_for_only_as_often_as_configured(
    tmp_path: Path, nats_server: NatsServer, database: str
) -> None:
    """A check interval longer than the playbook's reload interval was cut to it (the
    30 s default looked every 2 s, each look a write on SQLite)."""
    async for service in start(tmp_path, nats_server.url, database, response_check_interval_s=3600):
        [task] = (await service.issue([a_task(due_in_h=1, now=service.clock.now)])).json()["ids"]
        service.clock.advance(hours=2)  # past due; the check at start found nothing due
        await asyncio.sleep(1.0)  # twenty reloads of the playbook (every 0.05 s here)
        assert service.tap.bodies("overdue") == []
        assert [m["task"] for m in service.tap.bodies("issued")] == [task]


async def test_an_overdue_task_is_announced_once(service: Harness) -> None:
    now = service.clock.now
    [late, fine] = (
        await service.issue(
            [a_task(due_in_h=1, now=now), a_task(due_in_h=5, now=now, kind="verify_contact")]
        )
    ).json()["ids"]
    service.clock.advance(hours=2)
    await service.tap.wait_for("an overdue message", lambda: bool(service.tap.bodies("overdue")))
    service.clock.advance(minutes=1)
    [announced] = service.tap.bodies("overdue")
    assert announced["task"] == late and announced["event"] == "task_overdue"
    assert set(announced) >= {"task", "unit", "kind", "due", "person"}
    [shown] = [t for t in await service.tasks(COMMUNITY_A, "community_a") if t["id"] == late]
    assert shown["overdue"] is True
    # done before its due time: never announced
    assert (await service.change(fine, "community_a", state="done")).status_code == 200
    service.clock.advance(hours=10)
    await service.tap.wait_for("the done message", lambda: bool(service.tap.bodies("changed")))
    assert [m["task"] for m in service.tap.bodies("overdue")] == [late]


async def test_personal_details_are_deleted_days_after_the_task_closes(service: Harness) -> None:
    [closed, still_open] = (await service.issue([a_task(), a_task()])).json()["ids"]
    assert (await service.change(closed, "community_a", state="unreachable")).status_code == 200
    service.clock.advance(days=29)
    assert (await service.task(closed, "community_a"))["details"] == "shown"
    service.clock.advance(days=1, seconds=1)
    purged = await service.eventually(
        "the purge",
        lambda: service.task(closed, "community_a"),
        lambda task: task["details"] == "purged",
    )
    assert purged["details"] == "purged" and "contact" not in purged
    assert purged["state"] == "unreachable" and purged["history"]
    assert (await service.task(still_open, "community_a"))["details"] == "shown"


async def _fingerprint(database: str, task_id: str) -> str | None:
    engine = make_engine(database)
    try:
        async with engine.connect() as conn:
            query = select(tasks.c.request_fingerprint).where(tasks.c.id == task_id)
            found: str | None = (await conn.execute(query)).scalar_one()
            return found
    finally:
        await engine.dispose()


async def test_a_keyed_requests_fingerprint_is_deleted_with_the_personal_details(
    service: Harness, database: str
) -> None:
    """The fingerprint of a request is a digest of its contact and note: once they are
    purged, a phone number could be guessed back from it (with the key and the rest of
    the row), so it goes with them."""
    headers = {**service.auth("district"), "Idempotency-Key": "req-purge"}
    answer = await service.client.post("/v1/tasks", json=[a_task()], headers=headers)
    [task_id] = answer.json()["ids"]
    assert await _fingerprint(database, task_id) is not None
    assert (await service.change(task_id, "community_a", state="unreachable")).status_code == 200
    service.clock.advance(days=30, seconds=1)
    await service.eventually(
        "the purge",
        lambda: service.task(task_id, "community_a"),
        lambda task: task["details"] == "purged",
    )
    assert await _fingerprint(database, task_id) is None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_ten_thousand_tasks_in_one_request(service: Harness) -> None:
    body = [a_task(COMMUNITY_A if i % 2 else COMMUNITY_B) for i in range(10_000)]
    answer = await service.issue(body)
    assert answer.status_code == 201
    assert len(set(answer.json()["ids"])) == 10_000
    listed = await service.tasks(DISTRICT, "district", limit="5000", offset="5000")
    assert len(listed) == 5000
    await service.tap.wait_for(
        "every issued message", lambda: len(service.tap.messages) == 10_000, timeout_s=120
    )
    too_many = await service.issue([a_task()] * 10_001)
    assert too_many.status_code == 413
    huge = b"[" + b" " * service.settings.response_max_body_bytes + b"]"
    too_large = await service.client.post(
        "/v1/tasks", content=huge, headers=service.auth("district")
    )
    assert too_large.status_code == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length
        for _ in range(40):
            yield b" " * (1024 * 1024)

    unbounded = await service.client.post(
        "/v1/tasks", content=chunked(), headers=service.auth("district")
    )
    assert unbounded.status_code == 413
    metrics = (await service.client.get("/metrics")).text
    assert 'zhibao_response_tasks_issued_total{source="api"}' in metrics


async def stored_tasks(url: str) -> set[str]:
    """The task ids of the ``issued`` messages kept in the tasks stream."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(TASKS_STREAM)
        messages = [
            await js.get_msg(TASKS_STREAM, seq) for seq in range(1, info.state.last_seq + 1)
        ]
    except nats.js.errors.NotFoundError:
        return set()
    finally:
        await client.close()
    return {
        json.loads(m.data or b"{}")["task"]
        for m in messages
        if (m.subject or "").endswith(".issued")
    }


async def test_tasks_issued_while_nats_is_down_reach_the_stream_after(
    service: Harness, nats_server: NatsServer
) -> None:
    nats_server.stop()
    answer = await service.issue([a_task(), a_task()])
    assert answer.status_code == 201  # stored; its messages wait in the outbox
    nats_server.start()
    for _ in range(600):
        if await stored_tasks(nats_server.url) == set(answer.json()["ids"]):
            break
        await asyncio.sleep(0.1)
    assert await stored_tasks(nats_server.url) == set(answer.json()["ids"])


async def test_the_city_and_the_province_list_the_tasks_of_every_district(
    service: Harness,
) -> None:
    """The city's and the province's command centres see the tasks below them."""
    issued = (await service.issue([a_task(COMMUNITY_A), a_task(COMMUNITY_B)])).json()["ids"]
    for unit, who in (("6401", "city"), ("64", "province_reader")):
        listed = await service.tasks(unit, who)
        assert sorted(t["id"] for t in listed) == sorted(issued)
    outside = await service.client.get(
        "/v1/tasks", params={"unit": "6402"}, headers=service.auth("city")
    )
    assert outside.status_code == 403
