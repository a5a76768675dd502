"""A community that never reported, or has been silent longer than the activity window,
is alerted — and reminded at the silent-community pace — instead of being forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, published
from tests.alerts.test_lifecycle import World
from tests.alerts.test_time_rules import rows
from tests.support.webhook import Receiver
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.raising import Routing
from zhibao_alerts.tables import alerts, notifications
from zhibao_alerts.watchdog import Watchdog
from zhibao_shared.hierarchy import load_registry

REGISTRY = """\
units:
  - {code: '6401', name: 银川市, name_en: Yinchuan, level: city, parent: null}
  - {code: '640106', name: 金凤区, name_en: Jinfeng, level: district, parent: '6401'}
  - {code: '640106001', name: 街道, name_en: Street, level: street, parent: '640106'}
  - {code: '640106001001', name: 甲社区, name_en: A, level: community, parent: '640106001',
     households: 1000, population: 2000}
  - {code: '640106001002', name: 乙社区, name_en: B, level: community, parent: '640106001',
     households: 1000, population: 2000}
"""
SPOKE, NEVER = "640106001001", "640106001002"
RULES = Rules.model_validate({"aberration": {"methods": []}, "silence": {"active_days": 7}})


def _rota(receiver: Receiver) -> OnCall:
    """One step, reminded hourly: the silent-community pace (daily) must win."""
    return OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": "640106",
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": "district duty", "webhook": f"{receiver.url}/d"}],
                }
            ],
            "escalation": {
                "warning": {
                    "steps": [{"level": "district", "after_minutes": 0}],
                    "repeat_minutes": 60,
                }
            },
        }
    )


async def _reminders(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(notifications.c.reason)
            .join(alerts, alerts.c.id == notifications.c.alert_id)
            .where(alerts.c.rule == "silent_community")
        )
        return sum(reason.startswith("reminder") for reason in found.scalars())


async def test_silent_and_never_reporting_communities_are_alerted_and_reminded_daily(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    clock.now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    rota = _rota(webhook)
    world = World(engine, clock, webhook, RULES, rota)
    await world.send(
        published(
            "screening",
            {"temperature_c": 36.5, "site": "gate"},
            community=SPOKE,
            when=clock.now - timedelta(hours=1),
        )
    )
    routing = Routing(rota, load_registry(registry), "http://aggregator")
    dog = Watchdog(engine, lambda: RULES, lambda: routing, "Asia/Shanghai", clock)
    await dog.tick()
    assert await rows(engine, "silent_community") == [], "a new deployment pages nobody"

    clock.advance(days=7, hours=1)
    await dog.tick()
    found = {w: s for w, s in await rows(engine, "silent_community")}
    assert found == {
        "never": "firing",
        (clock.now - timedelta(days=7, hours=2)).isoformat(): "firing",
    }
    await world.dispatcher.tick()
    paged = [b["groupLabels"]["alertname"] for b in webhook.bodies("/d")]
    assert paged.count("silent_community") == 2

    clock.advance(hours=23)  # the warning policy would have reminded 23 times
    await world.dispatcher.tick()
    await dog.tick()
    assert await _reminders(engine) == 0
    clock.advance(hours=1, minutes=1)
    await world.dispatcher.tick()
    assert await _reminders(engine) == 2, "each silent community reminded after a day"
    assert len(await rows(engine, "silent_community")) == 2, "still one alert each"
