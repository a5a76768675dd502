"""From the command centre's POST /v1/tasks to the rollups: the response service and the
aggregator, in-process, on one real nats-server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.aggregator.tasks_support import Running, aggregator, eventually
from tests.response.conftest import a_task, start
from tests.support.events import COMMUNITY_A, COMMUNITY_B, resident_id
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.db import sqlite_url
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration

STREET, DISTRICT, CITY = "640106001", "640106", "6401"
#: The personal details a_task() carries: never in the aggregator's answers.
PERSONAL_VALUES = ("张秀兰", "13912345678", "枫林湾 3-2-501", resident_id(seq=456))
FIGURES = ("tasks_open", "tasks_overdue", "tasks_done", "tasks_unreachable")


#: open, overdue, done, unreachable, median hours to done
EXPECTED = {
    COMMUNITY_A: (1, 1, 1, 0, 3.0),
    COMMUNITY_B: (1, 0, 0, 0, None),
    STREET: (1, 1, 1, 0, 3.0),
    COMMUNITY_B[:9]: (1, 0, 0, 0, None),  # B lies in the neighbouring street
    DISTRICT: (2, 1, 1, 0, 3.0),
    CITY: (2, 1, 1, 0, 3.0),
}


async def _all(running: Running) -> dict[str, tuple[Any, ...]]:
    return {code: await _counts(running, code) for code in EXPECTED}


async def _counts(running: Running, code: str) -> tuple[Any, ...]:
    figures = await running.rollup(code)
    return (*(figures[name] for name in FIGURES), figures["median_hours_to_done"])


async def test_tasks_issued_done_and_transferred_show_in_the_rollups(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "aggregator", nats_url=nats_server.url, _env_file=None
    )
    database = sqlite_url(tmp_path, "response")
    async with aggregator(settings) as running:
        async for response in start(tmp_path / "response", nats_server.url, database):
            real_now = datetime.now(UTC).replace(microsecond=0)
            response.clock.now = real_now - timedelta(hours=3)
            late = a_task(due_in_h=-1, now=real_now)  # due an hour ago: overdue
            # done by the state route: a kind that needs no visit (a companion's does)
            batch = [a_task(now=real_now, kind="verify_contact"), late, a_task(now=real_now)]
            issued = await response.issue(batch)
            assert issued.status_code == 201, issued.text
            done, overdue, moved = issued.json()["ids"]
            response.clock.now = real_now
            for task, body in (
                (done, {"state": "accepted"}),
                (done, {"state": "done"}),
                (moved, {"state": "transferred", "to": COMMUNITY_B}),
            ):
                answer = await response.change(task, "community_a", **body)
                assert answer.status_code == 200, answer.text

            assert await eventually(
                "the task rollups", lambda: _all(running), lambda f: f == EXPECTED
            )
            answer = await running.get(f"/v1/units/{DISTRICT}/tasks/overdue")
            assert answer.status_code == 200
            (street,) = answer.json()["streets"]
            assert [(t["task"], t["community"]) for t in street["tasks"]] == [
                (overdue, COMMUNITY_A)
            ]
            assert not [v for v in PERSONAL_VALUES if v in answer.text]
