"""Crash safety (SIGKILL mid-run, restart, still exact) and rebuild-equals-live."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.aggregator.generator import compare, generate, truth
from tests.aggregator.harness import consume, publish, read_all
from zhibao_aggregator.bootstrap import create_app, rebuild
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.tables import applied_events
from zhibao_shared.db import make_engine, sqlite_url
from zhibao_shared.natsserver import NatsServer, free_port

pytestmark = pytest.mark.integration


def _service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The aggregator as ``zhibao up`` runs it, its structured log written to ``log``."""
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "zhibao_aggregator"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _terminate(service: subprocess.Popen[bytes], log: Path, within_s: float = 30) -> int:
    """SIGTERM, then its exit status; a service that does not stop fails with its log."""
    service.send_signal(signal.SIGTERM)
    try:
        return service.wait(within_s)
    except subprocess.TimeoutExpired:
        service.kill()
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"the aggregator did not stop within {within_s} s of SIGTERM; log:\n{tail}")


async def _applied(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(applied_events)) or 0)
    finally:
        await engine.dispose()


async def _wait_applied(url: str, at_least: int, timeout_s: float) -> int:
    async with asyncio.timeout(timeout_s):
        while (count := await _applied(url)) < at_least:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.05)
    return count


async def test_sigkill_mid_run_then_restart_is_still_exact(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = AggregatorSettings(data_dir=data_dir, nats_url=nats_server.url)
    scenario = generate(seed=7, screenings=1200)
    await publish(nats_server.url, scenario, settings)
    env = {
        **os.environ,
        "ZHIBAO_NATS_URL": nats_server.url,
        "ZHIBAO_DATA_DIR": str(data_dir),
        "ZHIBAO_AGGREGATOR_PORT": str(free_port()),
        "ZHIBAO_AGGREGATOR_BATCH_SIZE": "50",
        # What the killed instance had fetched but not acked comes back after this.
        "ZHIBAO_AGGREGATOR_ACK_WAIT_S": "3",
    }
    db_url = settings.database_url()
    migrating = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zhibao_aggregator", "migrate", env=env
    )
    assert await migrating.wait() == 0
    total = len(scenario.unique)

    first = _service(env, tmp_path / "first.log")
    try:
        at_kill = await _wait_applied(db_url, 300, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    assert at_kill < total, "the aggregator finished before it could be killed"

    second_log = tmp_path / "second.log"
    second = _service(env, second_log)
    try:
        await _wait_applied(db_url, total, timeout_s=90)
        await asyncio.sleep(0.5)  # any redelivered duplicates would land now
    finally:
        status = _terminate(second, second_log)
    # uvicorn re-raises SIGTERM after its graceful shutdown: exiting by it is a clean stop.
    assert status in (0, -signal.SIGTERM)
    engine = make_engine(db_url)
    try:
        actual = await read_all(engine, settings, scenario.days)
    finally:
        await engine.dispose()
    assert compare(actual, truth(scenario)) == []


@pytest.mark.parametrize("held_keys", [250_000, 7], ids=["held to the end", "written often"])
async def test_rebuild_from_the_stream_equals_live(
    nats_server: NatsServer, tmp_path: Path, held_keys: int
) -> None:
    live = AggregatorSettings(data_dir=tmp_path / "live", nats_url=nats_server.url)
    scenario = generate(seed=11, screenings=600, persons=80, isolated=40)
    await publish(nats_server.url, scenario, live)
    await migrate(live.database_url())
    live_engine = make_engine(live.database_url())
    rebuilt_url = sqlite_url(tmp_path / "rebuilt", "aggregator")
    rebuilt_settings = live.model_copy(
        update={
            "aggregator_database_url": rebuilt_url,
            "aggregator_rebuild_held_keys": held_keys,
            "aggregator_rebuild_batch_size": 50,  # many batches, whatever is held across them
        }
    )
    rebuilt_engine = make_engine(rebuilt_url)
    try:
        await consume(nats_server.url, live_engine, live)
        replayed = await rebuild(rebuilt_settings)
        assert replayed == len(scenario.publish)
        before = await read_all(live_engine, live, scenario.days)
        after = await read_all(rebuilt_engine, rebuilt_settings, scenario.days)
    finally:
        await live_engine.dispose()
        await rebuilt_engine.dispose()
    assert after == before
    assert compare(after, truth(scenario)) == []


async def test_rebuild_refuses_a_database_with_data(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    from zhibao_aggregator.bootstrap import NotEmpty

    settings = AggregatorSettings(data_dir=tmp_path / "d", nats_url=nats_server.url)
    scenario = generate(seed=3, screenings=20, persons=2, isolated=1)
    await publish(nats_server.url, scenario, settings)
    await rebuild(settings)
    with pytest.raises(NotEmpty):
        await rebuild(settings)


async def test_the_service_refuses_a_database_whose_rebuild_was_interrupted(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A rebuild holds counts in memory: stopped midway, the events it applied are not
    counted yet, so the service must not start on that database and continue."""
    settings = AggregatorSettings(
        data_dir=tmp_path / "d",
        nats_url=nats_server.url,
        aggregator_rebuild_batch_size=10,
        aggregator_port=free_port(),
    )
    scenario = generate(seed=5, screenings=1500, persons=40, isolated=20)
    await publish(nats_server.url, scenario, settings)
    url = settings.database_url()
    await migrate(url)
    env = {
        **os.environ,
        "ZHIBAO_NATS_URL": nats_server.url,
        "ZHIBAO_DATA_DIR": str(settings.data_dir),
        "ZHIBAO_AGGREGATOR_REBUILD_BATCH_SIZE": "10",
    }
    # Killed, not cancelled: a process dies without running its cleanup, and Python
    # 3.11's asyncio.wait_for (under nats-py's fetch) can swallow a task's cancellation.
    rebuilding = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zhibao_aggregator",
        "rebuild",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_applied(url, 100, timeout_s=60)
    finally:
        rebuilding.kill()
        await rebuilding.wait()
    assert await _applied(url) < len(scenario.unique), "the rebuild finished before its stop"

    with pytest.raises(RuntimeError, match="rebuild --force"):
        async with create_app(settings).router.lifespan_context(FastAPI()):
            pass
    await rebuild(settings, force=True)
    async with create_app(settings).router.lifespan_context(FastAPI()):
        pass
    engine = make_engine(url)
    try:
        assert compare(await read_all(engine, settings, scenario.days), truth(scenario)) == []
    finally:
        await engine.dispose()
