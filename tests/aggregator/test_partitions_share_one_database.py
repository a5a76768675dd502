"""The scale-out recipe: aggregators partitioned by district, sharing one PostgreSQL.

Each partition consumes only its district's events (its own durable consumer), both
write the one database, so a read at any level (street, district, city) from any
instance covers every partition; a person whose events move from one district to the
other is one person at the city, whose state follows event time (an isolation started
in one district and ended in the other closes); and no district's communities are
"missing" a report the other partition received.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nats
import pytest
import yaml

from tests.aggregator.harness import consume
from zhibao_aggregator.bootstrap import reader
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine
from zhibao_shared.events import parse_published, published_payload
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject

pytestmark = pytest.mark.integration

CITY = "6401"
WEST, EAST = "640106", "640104"
WEST_COMMUNITY, EAST_COMMUNITY = "640106001001", "640104001001"
ZONE = ZoneInfo("Asia/Shanghai")
MOVER, CASE = "a" * 32, "b" * 32


def _registry(path: Path) -> Path:
    units: list[dict[str, Any]] = [{"code": CITY, "name": "市", "level": "city", "parent": None}]
    for district, community in ((WEST, WEST_COMMUNITY), (EAST, EAST_COMMUNITY)):
        street = community[:9]
        units += [
            {"code": district, "name": f"区{district}", "level": "district", "parent": CITY},
            {"code": street, "name": f"街道{street}", "level": "street", "parent": district},
            {
                "code": community,
                "name": f"社区{community}",
                "level": "community",
                "parent": street,
                "households": 3000,
                "population": 6000,
            },
        ]
    path.write_text(yaml.safe_dump({"units": units}, allow_unicode=True), encoding="utf-8")
    return path


def _event(n: int, community: str, kind: str, when: datetime, data: dict[str, Any]) -> bytes:
    event = parse_published(
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": f"/{community}/system",
                "subject": community,
                "type": f"zhibao.{kind}.v1",
                "time": when.isoformat(),
                "reporter": "tok",
                "receivedat": (when + timedelta(minutes=5)).isoformat(),
                "data": data,
            }
        )
    )
    return published_payload(event)


def _history(yesterday: date) -> list[tuple[str, bytes]]:
    """The mover's isolation starts in the west and ends in the east; a confirmed case in
    the west recovers in the east; each community closes its day."""
    start = datetime.combine(yesterday, time(10), ZONE)
    end = start + timedelta(days=1)
    home = {"kind": "home"}
    events: list[tuple[str, str, datetime, dict[str, Any]]] = [
        (WEST_COMMUNITY, "isolation", start, {"person": {"pid": MOVER}, "action": "start", **home}),
        (EAST_COMMUNITY, "isolation", end, {"person": {"pid": MOVER}, "action": "end", **home}),
        (WEST_COMMUNITY, "case", start, {"person": {"pid": CASE}, "classification": "confirmed"}),
        (EAST_COMMUNITY, "case", end, {"person": {"pid": CASE}, "classification": "recovered"}),
        (WEST_COMMUNITY, "daily_report", start, {"date": yesterday.isoformat(), "zero": False}),
        (EAST_COMMUNITY, "daily_report", start, {"date": yesterday.isoformat(), "zero": True}),
    ]
    return [
        (event_subject(c, kind), _event(n, c, kind, when.astimezone(UTC), data))
        for n, (c, kind, when, data) in enumerate(events)
    ]


async def _publish(
    url: str, settings: AggregatorSettings, history: list[tuple[str, bytes]]
) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(settings))
        # the east (the isolation's end, the recovery) is stored before the west
        for subject, payload in sorted(history, key=lambda item: WEST in item[0]):
            await js.publish(subject, payload, stream=EVENTS_STREAM)
    finally:
        await client.close()


async def test_two_district_partitions_on_one_database_give_right_city_figures(
    nats_server: NatsServer, tmp_path: Path, postgres_url: str
) -> None:
    registry = _registry(tmp_path / "registry.yaml")
    today = datetime.now(ZONE).date()
    yesterday = today - timedelta(days=1)

    def partition(district: str) -> AggregatorSettings:
        return AggregatorSettings(
            data_dir=tmp_path / district,
            registry_path=registry,
            aggregator_districts=[district],
            aggregator_durable=f"aggregator-{district}",
            _env_file=None,
        )

    west, east = partition(WEST), partition(EAST)
    await _publish(nats_server.url, west, _history(yesterday))
    await migrate(postgres_url)
    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    try:
        await asyncio.gather(
            consume(nats_server.url, engines[0], east, batch_size=1),
            consume(nats_server.url, engines[1], west, batch_size=1),
        )
        for settings, engine in ((west, engines[0]), (east, engines[1])):
            read = reader(settings, engine)
            before = await read.figures(CITY, yesterday)
            after = await read.figures(CITY, today)
            assert before["in_isolation"] == 1 and after["in_isolation"] == 0
            assert before["current_confirmed"] == 1 and after["current_confirmed"] == 0
            assert after["cumulative_confirmed"] == 1
            assert before["reports_received"] == 2
            for district in (WEST, EAST):
                figures = await read.figures(district, yesterday)
                assert figures["reports_received"] == 1, district
            assert (await read.figures(EAST, today))["isolation_ended"] == 1
            assert (await read.figures(WEST, today))["in_isolation"] == 0
    finally:
        for engine in engines:
            await engine.dispose()
