"""Corrections reach the running alerts service on their own subject
(``zhibao.events.<district>.<community>.correction``): an acknowledged case retracted on
the bus stays visible, resolved with the correction's reason and reporter, and a fresh
service replaying the stream ends with the same alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.conftest import COMMUNITY, confirmed, correction
from tests.alerts.service_process import RunningAlerts, publish, running_alerts, wait_for
from tests.alerts.test_event_time import sick
from tests.support.webhook import Receiver
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

REASON = "result belonged to another resident; entered in error"
#: Alerts raised from events (the watchdog's judge the present and differ by clock).
EVENT_RULES = ("immediate_", "fever_cluster", "ears_")


def _alerts(alerts: RunningAlerts, secret: str) -> list[dict[str, Any]]:
    states = ["firing", "acknowledged", "resolved", "expired", "silenced", "recorded"]
    found = alerts.call("GET", "/v1/alerts", secret, params={"state": states}).json()["alerts"]
    return [a for a in found if a["rule"].startswith(EVENT_RULES)]


def _outcome(alerts: RunningAlerts, secret: str) -> list[tuple[str, str, str, str]]:
    return sorted((a["rule"], a["unit"], a["window"], a["state"]) for a in _alerts(alerts, secret))


def test_a_retraction_on_the_bus_resolves_an_acknowledged_case_and_replay_agrees(
    tmp_path: Path, nats_server: NatsServer, webhook: Receiver
) -> None:
    oncall = json.dumps({"webhooks": [f"{webhook.url}/all"]})
    now = datetime.now(UTC)
    case = confirmed(pid="d" * 32, when=now - timedelta(minutes=20))
    fevers = [sick(f"{n}" * 32, now - timedelta(minutes=10 + n)) for n in (1, 2, 3)]
    normal = {"temperature_c": 36.4, "site": "household", "compound": "枫林湾", "building": "3"}
    for name in ("live", "replay"):
        (tmp_path / name).mkdir()
    with running_alerts(tmp_path / "live", nats_server, oncall) as alerts:
        _, secret = alerts.token(COMMUNITY[:6], Role.OPERATE, name="duty officer")
        publish(nats_server.url, [case, *fevers])
        wait_for(lambda: len(_alerts(alerts, secret)) == 2)
        [case_alert] = [a for a in _alerts(alerts, secret) if a["rule"] == "immediate_confirmed"]
        acked = alerts.call("POST", f"/v1/alerts/{case_alert['id']}/ack", secret)
        assert acked.status_code == 200
        publish(
            nats_server.url,
            [
                correction(case, reason=REASON, reporter="cdc-lab"),
                correction(fevers[0], {**normal, "person": {"pid": "1" * 32}}),
            ],
        )
        wait_for(lambda: {a["state"] for a in _alerts(alerts, secret)} == {"resolved"})
        shown = alerts.call("GET", f"/v1/alerts/{case_alert['id']}", secret).json()
        assert shown["acknowledged_by"] == "duty officer", "the acknowledgement stays"
        steps = [(e["action"], e["actor"]) for e in shown["timeline"]]
        assert ("acknowledged", "duty officer") in steps
        assert steps[-2:] == [("evidence_withdrawn", "cdc-lab"), ("resolved", "system")]
        assert REASON in shown["timeline"][-1]["detail"]
        live = _outcome(alerts, secret)
    assert [(rule, state) for rule, _, _, state in live] == [
        ("fever_cluster", "resolved"),
        ("immediate_confirmed", "resolved"),
    ]

    def replaying(env: dict[str, str]) -> None:
        env["ZHIBAO_ALERTS_DURABLE"] = "alerts-replay"  # a new reader of the whole stream

    with running_alerts(tmp_path / "replay", nats_server, oncall, before_start=replaying) as fresh:
        _, secret = fresh.token(COMMUNITY[:6], Role.OPERATE)
        wait_for(lambda: _outcome(fresh, secret) == live)
