"""No value the contract admits can fail a database write (PostgreSQL enforces lengths):
events of every type with the longest id, source and labels are applied and counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhibao_aggregator.bootstrap import reader, rules
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.writer import apply_batch
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import make_engine
from zhibao_shared.events import MAX_ID_LENGTH, MAX_SOURCE_LENGTH, parse_published

pytestmark = pytest.mark.integration

COMMUNITY = "640106001001"
LABEL = "楼" * 64


def _event(n: int, kind: str, data: dict[str, Any]) -> Delivery:
    now = datetime.now(UTC) - timedelta(minutes=5)
    event = parse_published(
        json.dumps(
            {
                "specversion": "1.0",
                "id": str(n).rjust(MAX_ID_LENGTH, "i"),
                "source": f"/{COMMUNITY}/".ljust(MAX_SOURCE_LENGTH, "s"),
                "subject": COMMUNITY,
                "type": f"zhibao.{kind}.v1",
                "time": now.isoformat(),
                "reporter": "r" * 64,
                "receivedat": now.isoformat(),
                "data": data,
            }
        )
    )
    return Delivery(event, "s", n, 1)


async def test_the_longest_values_are_applied_on_postgresql(
    settings: AggregatorSettings, postgres_url: str
) -> None:
    person = {"pid": "a" * 32}
    today = datetime.now(UTC).date().isoformat()
    batch = [
        _event(
            1,
            "screening",
            {"temperature_c": 38.0, "site": "gate", "compound": LABEL, "building": LABEL},
        ),
        _event(2, "case", {"person": person, "classification": "confirmed"}),
        _event(3, "isolation", {"person": person, "action": "start", "kind": "home"}),
        _event(4, "daily_report", {"date": today, "zero": False}),
    ]
    await migrate(postgres_url)
    engine = make_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            applied = await apply_batch(conn, batch, rules(settings))
        day = batch[0].event.time.astimezone(reader(settings, engine).calendar.zone).date()
        figures = await reader(settings, engine).figures(COMMUNITY, day)
    finally:
        await engine.dispose()
    assert applied.applied == 4
    assert figures["fevers"] == 1 and figures["new_confirmed"] == 1
