"""The task consumer under failure: a batch whose acknowledgement is lost after the commit is
nak'd (AckPolicy.NACK_ON_ERROR), delivered again, and counted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.aggregator.tasks_support import eventually, message, publish_tasks, task_id
from zhibao_aggregator import task_consumer
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.task_consumer import ApplyTaskMessages
from zhibao_shared.broker import make_broker, stop_broker
from zhibao_shared.db import make_engine
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import TASKS_STREAM
from zhibao_shared.task_events import TaskEvent, TaskState

pytestmark = pytest.mark.integration

A = "640106001001"


class FailingAfterCommit:
    """Applies (and commits) each batch, then fails the first ``times`` batches: their
    messages are nak'd and delivered again although they were applied."""

    def __init__(self, inner: ApplyTaskMessages, times: int) -> None:
        self.inner = inner
        self.left = times
        self.calls = 0

    async def __call__(self, bodies: Sequence[object]) -> object:
        self.calls += 1
        applied = await self.inner(bodies)
        if self.left > 0:
            self.left -= 1
            raise ConnectionResetError("acknowledgement lost after the commit (test)")
        return applied


async def test_a_batch_failing_after_its_commit_is_redelivered_and_counted_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, _env_file=None
    )
    await migrate(settings.database_url())
    engine = make_engine(settings.database_url())
    now = datetime.now(UTC)
    due = now + timedelta(days=1)
    messages = [
        message(task_id(n), TaskEvent.ISSUED, TaskState.ISSUED, A, now - timedelta(hours=2), due)
        for n in range(1, 6)
    ] + [
        message(task_id(n), TaskEvent.CHANGED, TaskState.DONE, A, now - timedelta(minutes=1), due)
        for n in range(1, 3)
    ]
    await publish_tasks(nats_server.url, messages)
    calendar = Calendar.named(settings.timezone)
    flaky = FailingAfterCommit(ApplyTaskMessages(engine, calendar, lambda _changed: None), 2)
    broker = make_broker(settings, name="aggregator")
    read = reader(settings, engine)
    day = calendar.day(now - timedelta(minutes=1))
    try:
        await broker.start()
        subscriber = task_consumer.subscribe(broker, settings, flaky)
        await task_consumer.start(subscriber)
        await eventually(
            "the tasks applied after the failures",
            lambda: read.figures(A, day),
            lambda _f: flaky.calls >= 3,  # failed twice, then delivered again
        )
        js = broker.config.broker_config.connection_state.stream
        await eventually(
            "every message acknowledged",
            lambda: js.consumer_info(TASKS_STREAM, task_consumer.durable(settings)),
            lambda info: info.num_pending == 0 and info.num_ack_pending == 0,
        )
        figures = await read.figures(A, day)
        assert (figures["tasks_open"], figures["tasks_done"]) == (3, 2)
        assert figures["median_hours_to_done"] == pytest.approx(2 - 1 / 60, abs=0.01)
    finally:
        await stop_broker(broker)
        await engine.dispose()
