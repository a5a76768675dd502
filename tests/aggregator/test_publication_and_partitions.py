"""Changed rollups are pushed on NATS, coalesced; an instance can be limited to districts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.test_http_and_dead_letter import COMMUNITY, _confirmed
from zhibao_aggregator.bootstrap import consumer_spec, reader, rules
from zhibao_aggregator.publisher import RollupPublisher, pause_after
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.consumer import BatchConsumer, Delivery
from zhibao_shared.events import published_payload
from zhibao_shared.hierarchy import Level, Registry, lineage, load_registry
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM


async def test_a_busy_unit_is_published_once_per_interval_with_its_latest_figures(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    sent: list[tuple[str, dict[str, object]]] = []

    async def publish(subject: str, body: bytes) -> None:
        sent.append((subject, json.loads(body)))

    publisher = RollupPublisher(reader(settings, sqlite_engine), publish, interval_s=0.2)
    day = None
    for n in range(5):  # five batches arrive before the publisher wakes
        event = _confirmed(f"{n:032x}", f"e{n}")
        async with sqlite_engine.begin() as conn:
            await apply_batch(conn, [Delivery(event, "s", n, 1)], rules(settings))
        day = event.time.astimezone(reader(settings, sqlite_engine).calendar.zone).date()
        publisher.mark([(COMMUNITY, day), ("640106", day), ("6401", day)])
    await publisher.flush()
    assert sorted(subject for subject, _ in sent) == [
        "zhibao.rollups.city.6401",
        "zhibao.rollups.community.640106001001",
        "zhibao.rollups.district.640106",
    ]
    district = next(body for subject, body in sent if subject.endswith("640106"))
    assert district["figures"]["new_confirmed"] == 5  # type: ignore[index]
    assert district["date"] == str(day)


def test_the_publisher_waits_longer_after_a_costly_flush_so_counting_keeps_the_cores() -> None:
    """Under heavy load every unit is dirty at every flush: publishing takes at most its
    share of the time (0.2: a 1 s flush is followed by 4 s of counting), and light load
    keeps the configured interval."""
    assert pause_after(0.01, interval_s=0.5, max_share=0.2) == 0.5
    assert pause_after(1.0, interval_s=0.5, max_share=0.2) == pytest.approx(4.0)
    assert pause_after(1.0, interval_s=0.5, max_share=1.0) == 0.5, "share 1: interval only"
    assert AggregatorSettings(_env_file=None).aggregator_publish_max_share == 0.2
    for refused in (0, 1.5):
        with pytest.raises(ValidationError, match="aggregator_publish_max_share"):
            AggregatorSettings(aggregator_publish_max_share=refused, _env_file=None)


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _waits() -> tuple[float, float]:
    """The rollup wait histogram's count and sum so far (this process's registry)."""
    count = REGISTRY.get_sample_value("zhibao_aggregator_rollup_wait_seconds_count")
    total = REGISTRY.get_sample_value("zhibao_aggregator_rollup_wait_seconds_sum")
    return count or 0.0, total or 0.0


async def test_each_rollup_published_tells_how_long_after_its_units_first_change(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """The metric operators watch for the live view's lag: a unit changed at 100 s and
    again at 101 s, published at 102.5 s, waited 2.5 s (from its first change); one
    changed at 101 s waited 1.5 s; each publication is observed once."""
    clock = _Clock()

    async def publish(_subject: str, _body: bytes) -> None:
        return None

    read_side = reader(settings, sqlite_engine)
    publisher = RollupPublisher(read_side, publish, interval_s=0.2, clock=clock)
    day = read_side.calendar.today(datetime.now(UTC))
    before = _waits()
    publisher.mark([(COMMUNITY, day)])
    clock.now = 101.0
    publisher.mark([(COMMUNITY, day), ("640106", day)])
    clock.now = 102.5
    await publisher.flush()
    count, total = _waits()
    assert count - before[0] == 2
    assert total - before[1] == pytest.approx(2.5 + 1.5)


async def test_a_rollup_whose_publish_failed_goes_out_with_the_next_flush(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """NATS away during a flush: the units not published stay due (a quiet unit would
    otherwise show stale figures until its next event) and go out with the next flush,
    their wait counted from their first change."""
    clock = _Clock()
    sent: list[str] = []
    away = True

    async def publish(subject: str, _body: bytes) -> None:
        if away:
            raise ConnectionError("nats: connection closed")
        sent.append(subject)

    read_side = reader(settings, sqlite_engine)
    publisher = RollupPublisher(read_side, publish, interval_s=0.2, clock=clock)
    day = read_side.calendar.today(datetime.now(UTC))
    failed = REGISTRY.get_sample_value("zhibao_aggregator_rollups_failed_total") or 0.0
    publisher.mark([(unit, day) for unit in lineage(COMMUNITY)])
    await publisher.flush()
    assert sent == []
    assert REGISTRY.get_sample_value("zhibao_aggregator_rollups_failed_total") == failed + 5
    away, clock.now = False, 103.0
    before = _waits()
    await publisher.flush()  # nothing changed meanwhile
    assert sorted(sent) == [
        "zhibao.rollups.city.6401",
        "zhibao.rollups.community.640106001001",
        "zhibao.rollups.district.640106",
        "zhibao.rollups.province.64",
        "zhibao.rollups.street.640106001",
    ]
    count, total = _waits()
    assert count - before[0] == 5
    assert total - before[1] == pytest.approx(5 * 3.0)
    sent.clear()
    await publisher.flush()
    assert sent == [], "published once: nothing is due any more"


async def test_a_unit_changed_again_during_a_failed_flush_keeps_its_first_change(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings
) -> None:
    """A batch commits while a flush is sending: the unit is marked again (at 101 s)
    before its publish fails; the rollup then goes out with a wait counted from its
    first change (100 s), and the units after it in that flush still went out."""
    clock = _Clock()
    sent: list[str] = []
    read_side = reader(settings, sqlite_engine)
    day = read_side.calendar.today(datetime.now(UTC))
    publisher: RollupPublisher

    async def publish(subject: str, _body: bytes) -> None:
        if subject.endswith(".6401") and clock.now < 101:
            clock.now = 101.0
            publisher.mark([("6401", day)])
            raise ConnectionError("nats: outbound buffer full")
        sent.append(subject)

    publisher = RollupPublisher(read_side, publish, interval_s=0.2, clock=clock)
    publisher.mark([(unit, day) for unit in lineage(COMMUNITY)])
    await publisher.flush()
    assert "zhibao.rollups.city.6401" not in sent
    assert "zhibao.rollups.community.640106001001" in sent, "the other units went out"
    clock.now = 104.0
    before = _waits()
    await publisher.flush()
    assert sent[-1] == "zhibao.rollups.city.6401"
    count, total = _waits()
    assert count - before[0] == 1
    assert total - before[1] == pytest.approx(4.0)


async def test_unreadable_figures_are_tried_again_and_failing_flushes_back_off(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures cannot be read (the database away): the units stay due, and the loop
    waits twice as long after each failed flush, up to 30 s, then the interval again."""
    sent: list[str] = []

    async def publish(subject: str, _body: bytes) -> None:
        sent.append(subject)

    read_side = reader(settings, sqlite_engine)
    publisher = RollupPublisher(read_side, publish, interval_s=0.5, max_share=0.2)
    day = read_side.calendar.today(datetime.now(UTC))
    readable = read_side.figures_of

    async def unreadable(_codes: list[str], _day: object) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(read_side, "figures_of", unreadable)
    publisher.mark([(COMMUNITY, day)])
    pauses = []
    for _ in range(8):
        await publisher.flush()
        pauses.append(publisher.pause(0.01))
    assert sent == []
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    monkeypatch.setattr(read_side, "figures_of", readable)
    await publisher.flush()
    assert sent == ["zhibao.rollups.community.640106001001"]
    assert publisher.pause(0.01) == 0.5


async def test_a_registry_that_starts_at_the_city_still_publishes_its_rollups(
    sqlite_engine: AsyncEngine, settings: AggregatorSettings, tmp_path: Path
) -> None:
    """The rollups of the province above a city-only registry are kept but not published:
    the units the registry lists are, in the same flush (the province's must not stop them)."""
    city_only = [u for u in load_registry() if u.level is not Level.PROVINCE]
    city_only = [
        u.model_copy(update={"parent": None}) if u.code == "6401" else u for u in city_only
    ]
    path = tmp_path / "city.yaml"
    path.write_text(Registry(city_only).to_yaml(), "utf-8")
    configured = settings.model_copy(update={"registry_path": path})
    sent: list[str] = []

    async def publish(subject: str, _body: bytes) -> None:
        sent.append(subject)

    read_side = reader(configured, sqlite_engine)
    publisher = RollupPublisher(read_side, publish, interval_s=0.2)
    event = _confirmed("c" * 32, "e-city")
    async with sqlite_engine.begin() as conn:
        await apply_batch(conn, [Delivery(event, "s", 1, 1)], rules(configured))
    day = event.time.astimezone(read_side.calendar.zone).date()
    publisher.mark([(unit, day) for unit in lineage(COMMUNITY)])
    await publisher.flush()
    assert sorted(sent) == [
        "zhibao.rollups.city.6401",
        "zhibao.rollups.community.640106001001",
        "zhibao.rollups.district.640106",
        "zhibao.rollups.street.640106001",
    ]


async def test_an_instance_limited_to_a_district_sees_only_that_district(
    nats_server: NatsServer, settings: AggregatorSettings
) -> None:
    limited = settings.model_copy(update={"aggregator_districts": ["640106"]})
    seen: list[str] = []

    async def handler(batch: Sequence[Delivery]) -> None:
        seen.extend(d.subject for d in batch)

    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        event = _confirmed("f" * 32, "x1")
        for subject in (
            "zhibao.events.640106.640106001001.case",
            "zhibao.events.640105.640105001001.case",
        ):
            await js.publish(
                subject,
                published_payload(event),
                stream=EVENTS_STREAM,
                headers={"Nats-Msg-Id": subject},
            )
        consumer = BatchConsumer(js, consumer_spec(limited), handler, settings)
        await consumer.start()
        await asyncio.wait_for(consumer.run_until_caught_up(), 20)
    finally:
        await client.close()
    assert seen == ["zhibao.events.640106.640106001001.case"]
