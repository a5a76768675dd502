"""Tasks pushed down to communities in the rollups: open, overdue, done, unreachable and the
median hours to done at every level, from task messages as the response service publishes
them (repeated, out of order), in the report, and rebuilt equal to live."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import openpyxl
import pytest
from nats.js import JetStreamContext

from tests.aggregator.tasks_support import (
    KIND,
    Running,
    aggregator,
    eventually,
    message,
    publish_tasks,
    task_id,
)
from zhibao_aggregator.bootstrap import rebuild
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import sqlite_url
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import TASKS_STREAM
from zhibao_shared.task_events import TaskEvent, TaskMessage, TaskState

pytestmark = pytest.mark.integration

A, B = "640106001001", "640106001002"  # two communities of street 640106001
STREET = "640106001"
NEIGHBOUR = "640106002001"  # a community of the neighbouring street
DISTRICT, CITY = "640106", "6401"
ISSUED, CHANGED = TaskEvent.ISSUED, TaskEvent.CHANGED
TASK_FIGURES = (
    "tasks_open",
    "tasks_overdue",
    "tasks_done",
    "tasks_unreachable",
    "median_hours_to_done",
)


def scenario(now: datetime) -> list[TaskMessage]:
    """Eight tasks; every time lies before ``done`` (a minute ago), dues far from now.

    1 A done after 4 h · 2 B done after 2 h · 3 neighbour done after 9 h ·
    4 A open, overdue · 5 A -> B transferred, open · 6 B unreachable ·
    7 neighbour cancelled (level lifted) · 8 B accepted, overdue.
    """
    done = now - timedelta(minutes=1)
    later, past = now + timedelta(days=2), now - timedelta(days=1)

    def h(hours: float) -> datetime:
        return done - timedelta(hours=hours)

    return [
        message(task_id(1), ISSUED, TaskState.ISSUED, A, h(4), later),
        message(task_id(1), CHANGED, TaskState.DONE, A, done, later),
        message(task_id(2), ISSUED, TaskState.ISSUED, B, h(2), later),
        message(task_id(2), CHANGED, TaskState.ACCEPTED, B, h(1), later),
        message(task_id(2), CHANGED, TaskState.DONE, B, done, later),
        message(task_id(3), ISSUED, TaskState.ISSUED, NEIGHBOUR, h(9), later),
        message(task_id(3), CHANGED, TaskState.DONE, NEIGHBOUR, done, later),
        message(task_id(4), ISSUED, TaskState.ISSUED, A, h(30), past),
        message(task_id(4), TaskEvent.OVERDUE, TaskState.ISSUED, A, h(3), past),
        message(task_id(5), ISSUED, TaskState.ISSUED, A, h(3), later),
        message(task_id(5), CHANGED, TaskState.TRANSFERRED, B, h(2), later, from_unit=A),
        message(task_id(6), ISSUED, TaskState.ISSUED, B, h(5), later),
        message(task_id(6), CHANGED, TaskState.UNREACHABLE, B, done, later),
        message(task_id(7), ISSUED, TaskState.ISSUED, NEIGHBOUR, h(6), later),
        message(task_id(7), CHANGED, TaskState.CANCELLED, NEIGHBOUR, h(1), later),
        message(task_id(8), ISSUED, TaskState.ISSUED, B, h(40), past),
        message(task_id(8), CHANGED, TaskState.ACCEPTED, B, h(20), past),
    ]


EXPECTED: dict[str, tuple[int, int, int, int, float | None]] = {
    # open, overdue, done, unreachable, median hours to done
    A: (1, 1, 1, 0, 4.0),
    B: (2, 1, 1, 1, 2.0),
    NEIGHBOUR: (0, 0, 1, 0, 9.0),
    STREET: (3, 2, 2, 1, 3.0),
    DISTRICT: (3, 2, 3, 1, 4.0),
    CITY: (3, 2, 3, 1, 4.0),
}


def _shuffled_twice(messages: list[TaskMessage]) -> Iterator[TaskMessage]:
    """Every message twice, in a seeded random order (results before their issue)."""
    twice = messages + messages
    random.Random(15).shuffle(twice)
    yield from twice


def _tasks(figures: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(figures[name] for name in TASK_FIGURES)


async def _all(running: Running, day: str) -> dict[str, tuple[Any, ...]]:
    return {code: _tasks(await running.rollup(code, day)) for code in EXPECTED}


def _day(settings: AggregatorSettings, now: datetime) -> str:
    return Calendar.named(settings.timezone).day(now - timedelta(minutes=1)).isoformat()


async def test_task_figures_at_every_level_from_repeated_shuffled_messages(
    nats_server: NatsServer, tmp_path: Path, database: str
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        aggregator_database_url=database,
        # nothing may wait for a redelivery: a batch fetched must be applied at once
        aggregator_ack_wait_s=300,
        _env_file=None,
    )
    now = datetime.now(UTC)
    day = _day(settings, now)
    await publish_tasks(nats_server.url, list(_shuffled_twice(scenario(now))))
    async with aggregator(settings) as running:
        found = await eventually(
            "the task figures", lambda: _all(running, day), lambda f: f == EXPECTED
        )
        assert found == EXPECTED
        # transferred again: task 4 leaves A for B, its overdue count with it (at the time
        # of the scenario's results, so on the day read even just after local midnight)
        move = message(
            task_id(4),
            CHANGED,
            TaskState.TRANSFERRED,
            B,
            now - timedelta(minutes=1),
            now - timedelta(days=1),
            from_unit=A,
        )
        await publish_tasks(nats_server.url, [move, move])
        moved = await eventually(
            "task 4 in B",
            lambda: _all(running, day),
            lambda f: f[A][:2] == (0, 0),
        )
        assert moved[A] == (0, 0, 1, 0, 4.0)
        assert moved[B] == (3, 2, 1, 1, 2.0)
        assert moved[STREET] == EXPECTED[STREET]


async def test_overdue_tasks_per_street_and_the_report_columns(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, _env_file=None
    )
    now = datetime.now(UTC)
    day = _day(settings, now)
    await publish_tasks(nats_server.url, scenario(now))
    async with aggregator(settings) as running:
        await eventually("the task figures", lambda: _all(running, day), lambda f: f == EXPECTED)
        answer = await running.get(f"/v1/units/{DISTRICT}/tasks/overdue?date={day}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["overdue"] == 2
        (street,) = body["streets"]
        assert (street["code"], street["overdue"]) == (STREET, 2)
        listed = {(t["task"], t["community"], t["kind"]) for t in street["tasks"]}
        assert listed == {(task_id(4), A, KIND), (task_id(8), B, KIND)}
        assert all(
            set(t) == {"task", "community", "community_name", "kind", "due"}
            for t in street["tasks"]
        ), "ids, places, kinds and times only"

        report = await running.get(f"/v1/units/{STREET}/report.csv?date={day}")
        assert report.status_code == 200
        rows = list(csv.reader(io.StringIO(report.text.lstrip("\ufeff"))))
        header, by_code = rows[0], {row[0]: row for row in rows[1:]}
        columns = [
            header.index(h)
            for h in header
            if h.split(" ")[0]
            in ("未完成任务", "超时任务", "完成任务", "无法联系", "完成用时中位数(小时)")
        ]
        assert len(columns) == 5
        assert [by_code[A][i] for i in columns] == ["1", "1", "1", "0", "4.0"]
        assert [by_code[B][i] for i in columns] == ["2", "1", "1", "1", "2.0"]
        assert [by_code[STREET][i] for i in columns] == ["3", "2", "2", "1", "3.0"]

        xlsx = await running.get(f"/v1/units/{STREET}/report.xlsx?date={day}")
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
        assert sheet is not None
        table = [list(r) for r in sheet.iter_rows(values_only=True)]
        total = table[-1]
        assert [total[i] for i in columns] == [3, 2, 2, 1, 3.0]


async def test_rebuild_gives_the_live_task_figures(nats_server: NatsServer, tmp_path: Path) -> None:
    live = AggregatorSettings(data_dir=tmp_path / "live", nats_url=nats_server.url, _env_file=None)
    now = datetime.now(UTC)
    day = _day(live, now)
    yesterday = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    await publish_tasks(nats_server.url, list(_shuffled_twice(scenario(now))))
    async with aggregator(live) as running:
        before = await eventually(
            "the task figures", lambda: _all(running, day), lambda f: f == EXPECTED
        )
        before_yesterday = await _all(running, yesterday)
        overdue_before = (await running.get(f"/v1/units/{CITY}/tasks/overdue?date={day}")).json()
    rebuilt = live.model_copy(
        update={
            "data_dir": tmp_path / "rebuilt",
            "aggregator_database_url": sqlite_url(tmp_path / "rebuilt", "aggregator"),
            "aggregator_durable": "rebuilt",
        }
    )
    assert await rebuild(rebuilt) == 0, "no events: task messages only"
    async with aggregator(rebuilt) as running:
        assert await _all(running, day) == before
        assert await _all(running, yesterday) == before_yesterday
        overdue_after = (await running.get(f"/v1/units/{CITY}/tasks/overdue?date={day}")).json()
    assert {k: v for k, v in overdue_after.items() if k != "as_of"} == {
        k: v for k, v in overdue_before.items() if k != "as_of"
    }


async def test_an_instance_limited_to_other_districts_reads_none_of_these_tasks(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    limited = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        aggregator_districts=["640105"],
        _env_file=None,
    )
    now = datetime.now(UTC)
    await publish_tasks(nats_server.url, scenario(now))
    async with aggregator(limited) as running:
        client = await nats.connect(nats_server.url)
        try:
            info = await client.jetstream().consumer_info(TASKS_STREAM, "aggregator-tasks")
        finally:
            await client.close()
        assert info.config.filter_subjects == [
            f"zhibao.tasks.{place}.*.{event}"
            for place in ("640105", "6401", "64")  # the city's and province's own tasks too
            for event in ("issued", "changed", "overdue")
        ]
        assert (info.num_pending, info.delivered.stream_seq) == (0, 0), "nothing of 640106"
        assert _tasks(await running.rollup(CITY, _day(limited, now))) == (0, 0, 0, 0, None)


async def test_not_ready_without_its_task_consumer(nats_server: NatsServer, tmp_path: Path) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, _env_file=None
    )
    async with aggregator(settings) as running:
        client = await nats.connect(nats_server.url)
        try:
            js = client.jetstream()
            # ready already before its task consumer exists (a deployment without
            # the response service has no tasks stream): wait for it, then delete it
            await eventually(
                "the task consumer",
                lambda: _consumers(js),
                lambda names: "aggregator-tasks" in names,
            )
            await js.delete_consumer(TASKS_STREAM, "aggregator-tasks")
        finally:
            await client.close()
        answer = await eventually(
            "not ready", lambda: running.get("/readyz"), lambda r: r.status_code == 503
        )
        assert "tasks_consumer" in answer.text


async def _consumers(js: JetStreamContext) -> list[str]:
    """The tasks stream's consumers (none while the stream is not there yet)."""
    try:
        return [info.name for info in await js.consumers_info(TASKS_STREAM)]
    except nats.js.errors.NotFoundError:
        return []
