"""A fresh alerts service reading a week of history pages only what is still actionable:
the old days' alerts are recorded as expired, today's confirmed case is paged once, and
so is a case of three days ago that intake has only just received (late data is news);
the configured horizon decides how long after intake received it a case still pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, confirmed, fever
from tests.alerts.service_process import publish, running_alerts, wait_for
from tests.alerts.test_lifecycle import World
from tests.support.webhook import Receiver
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_shared.events import PublishedEvent
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role

COMMUNITY = "640106001001"
SHANGHAI = ZoneInfo("Asia/Shanghai")


LATE = "640106001002"


def _history() -> list[PublishedEvent]:
    """A confirmed case on each of the 2nd to 8th day back, a fever cluster 5 days back
    (each received by intake when it happened), a confirmed case now, and one of three
    days ago in another community received now."""
    now = datetime.now(UTC)
    days_ago = [now - timedelta(days=n) for n in range(8, 1, -1)]
    old = [confirmed(pid=f"{n:032x}", when=at) for n, at in enumerate(days_ago)]
    cluster = [fever(when=now - timedelta(days=5)) for _ in range(3)]
    late = confirmed(pid="e" * 32, when=now - timedelta(days=3), community=LATE)
    return [
        *old,
        *cluster,
        late.model_copy(update={"receivedat": now - timedelta(minutes=1)}),
        confirmed(pid="f" * 32, when=now - timedelta(minutes=5)),
    ]


def test_a_fresh_service_replaying_a_week_pages_only_todays_case(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    oncall = json.dumps({"webhooks": [f"{webhook.url}/all"]})
    history = _history()
    publish(nats_server.url, history)  # the stream holds it before the service starts
    with running_alerts(tmp_path, nats_server, oncall) as alerts:
        _, secret = alerts.token(COMMUNITY[:6], Role.OPERATE)

        def listed(state: str) -> list[tuple[str, str]]:
            found = alerts.call("GET", "/v1/alerts", secret, params={"state": state}).json()
            return sorted((a["rule"], a["day"]) for a in found["alerts"])

        wait_for(lambda: len(listed("expired")) == 8)
        assert [rule for rule, _ in listed("expired")] == ["fever_cluster"] + [
            "immediate_confirmed"
        ] * 7
        today = str(history[-1].time.astimezone(SHANGHAI).date())
        wait_for(lambda: ("immediate_confirmed", today) in listed("firing"))

        def paged() -> list[str]:
            names = [a["labels"]["alertname"] for b in webhook.bodies("/all") for a in b["alerts"]]
            # the watchdog's missing-report alert is about now: it may be paged too
            return [name for name in names if name != "missing_daily_report"]

        late_day = str(history[-2].time.astimezone(SHANGHAI).date())
        wait_for(lambda: len(paged()) >= 2)
        assert paged() == ["immediate_confirmed"] * 2, "today's case and the late one"
        assert [a for a in listed("firing") if a[0] != "missing_daily_report"] == sorted(
            [("immediate_confirmed", today), ("immediate_confirmed", late_day)]
        )


@pytest.mark.parametrize(("hours", "paged"), [(24, False), (48, True)])
async def test_the_configured_horizon_decides_whether_a_case_received_30_hours_ago_pages(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, hours: float, paged: bool
) -> None:
    world = World(engine, clock, webhook, horizon=PageHorizon(hours))
    received = clock.now - timedelta(hours=30)
    case = confirmed(pid="c" * 32, when=received - timedelta(minutes=5))
    await world.send(case.model_copy(update={"receivedat": received}))
    await world.dispatcher.tick()
    [alert] = await world.alerts()
    assert alert.state == ("firing" if paged else "expired")
    sent = [a["labels"]["alertname"] for b in webhook.bodies("/community") for a in b["alerts"]]
    assert sent == (["immediate_confirmed"] if paged else [])
