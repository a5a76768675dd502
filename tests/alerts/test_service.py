"""The alerts service as it runs: real nats-server, real HTTP, a real webhook receiver."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
import uvicorn

from tests.alerts.conftest import COMMUNITY, confirmed, publish_confirmed
from tests.support.webhook import Receiver
from zhibao_alerts.bootstrap import create_app, migrate
from zhibao_alerts.config_files import ConfigError, Watched
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.settings import AlertsSettings
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.events import published_payload
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.subjects import EVENTS_STREAM, event_subject
from zhibao_shared.tokens import Role, TokenStore

#: The person of the street's duty officer's personal token.
DUTY = "刘洋 (街道值班员)"


@pytest.fixture
def alerts_url(nats_server: NatsServer, webhook: Receiver, tmp_path: Path) -> Iterator[str]:
    oncall = tmp_path / "oncall.yaml"
    oncall.write_text(f"webhooks: ['{webhook.url}/all']\n")
    settings = AlertsSettings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        alerts_port=free_port(),
        alerts_oncall_path=oncall,
        log_json=True,
    )
    asyncio.run(migrate(settings))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.alerts_port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.alerts_port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(20)


async def _publish_twice(url: str) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_stream(js, events_stream_config(AlertsSettings()))
        event = confirmed()
        subject = event_subject(COMMUNITY, "case")
        # The same event twice, as a redelivery after the dedup window would bring it.
        for msg_id in ("first", "second"):
            await js.publish(
                subject,
                published_payload(event),
                stream=EVENTS_STREAM,
                headers={"Nats-Msg-Id": msg_id},
            )
    finally:
        await client.close()


def _wait_for(condition: object, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_a_confirmed_case_pages_once_and_can_be_acknowledged(
    alerts_url: str, nats_server: NatsServer, webhook: Receiver, tmp_path: Path
) -> None:
    tokens = TokenStore.in_data_dir(tmp_path / "data")
    street = tokens.create(
        scopes=[COMMUNITY[:9]], role=Role.OPERATE, name="street duty", person=DUTY
    )[1]
    neighbour = tokens.create(scopes=["640106002"], role=Role.OPERATE, person=DUTY)[1]
    shared = tokens.create(scopes=[COMMUNITY[:9]], role=Role.OPERATE, name="street system")[1]
    asyncio.run(_publish_twice(nats_server.url))

    def pages() -> int:
        return sum(
            b["groupLabels"]["alertname"] == "immediate_confirmed" for b in webhook.bodies("/all")
        )

    _wait_for(lambda: pages() >= 1)
    time.sleep(1.0)
    assert pages() == 1, "one alert, one page, despite the redelivery"

    def get(path: str, token: str) -> httpx.Response:
        return httpx.get(f"{alerts_url}{path}", headers={"authorization": f"Bearer {token}"})

    listed = get("/v1/alerts", street).json()["alerts"]
    listed = [a for a in listed if a["rule"] == "immediate_confirmed"]
    assert [(a["unit"], a["state"]) for a in listed] == [(COMMUNITY, "firing")]
    alert_id = listed[0]["id"]
    assert get("/v1/alerts", neighbour).json()["alerts"] == []
    assert get(f"/v1/alerts/{alert_id}", neighbour).status_code == 403
    refused = httpx.post(
        f"{alerts_url}/v1/alerts/{alert_id}/ack", headers={"authorization": f"Bearer {shared}"}
    )
    assert refused.status_code == 403
    assert "ZHIBAO_ALERTS_REQUIRE_PERSONAL_TOKENS" in refused.json()["detail"]
    assert "personal token" in refused.json()["detail"]
    ack = httpx.post(
        f"{alerts_url}/v1/alerts/{alert_id}/ack", headers={"authorization": f"Bearer {street}"}
    )
    assert ack.json()["state"] == "acknowledged"
    detail = get(f"/v1/alerts/{alert_id}", street).json()
    assert [e["action"] for e in detail["timeline"]] == ["fired", "acknowledged"]
    assert detail["timeline"][1]["actor"] == "street duty"
    assert detail["timeline"][1]["person"] == DUTY
    assert detail["timeline"][1]["detail"] == f"acknowledged by {DUTY} (token street duty)"
    assert (detail["acknowledged_by"], detail["acknowledged_by_person"]) == ("street duty", DUTY)
    assert {n["status"] for n in detail["notifications"]} == {"sent"}
    path = [u["code"] for u in detail["path"]]
    assert path == ["64", "6401", "640106", COMMUNITY[:9], COMMUNITY]
    assert detail["rollup_url"].endswith(f"/v1/units/{COMMUNITY}/rollup?date={detail['day']}")
    exposed = httpx.get(f"{alerts_url}/metrics").text
    assert 'zhibao_alerts_time_to_acknowledge_seconds_count{severity="critical"}' in exposed
    assert 'zhibao_alerts_notification_latency_seconds_count{channel="webhook"}' in exposed
    assert "\nzhibao_alerts_dispatcher_last_pass_timestamp_seconds " in exposed
    again = httpx.post(
        f"{alerts_url}/v1/alerts/{alert_id}/ack", headers={"authorization": f"Bearer {street}"}
    )
    assert again.status_code == 409
    assert (
        httpx.post(
            f"{alerts_url}/v1/alerts/{alert_id}/resolve",
            headers={"authorization": f"Bearer {shared}"},
        ).status_code
        == 403
    ), "resolving takes a personal token too"
    resolved = httpx.post(
        f"{alerts_url}/v1/alerts/{alert_id}/resolve",
        headers={"authorization": f"Bearer {street}"},
    )
    assert resolved.json()["state"] == "resolved"
    detail = get(f"/v1/alerts/{alert_id}", street).json()
    assert (detail["resolved_by"], detail["resolved_by_person"]) == ("street duty", DUTY)
    assert detail["timeline"][-1]["detail"] == f"resolved by {DUTY} (token street duty)"


def test_a_bad_rules_file_is_refused_and_the_old_rules_stay(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("cluster: {min_fevers: 5}\n")
    watched = Watched(Rules, path, "rules.yaml")
    assert watched.current.cluster.min_fevers == 5
    time.sleep(0.01)
    path.write_text("cluster: {min_fevers: one}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert not watched.reload_if_changed()
    assert watched.current.cluster.min_fevers == 5
    assert watched.last_error is not None and "cluster.min_fevers" in watched.last_error
    with pytest.raises(ConfigError, match="not valid YAML"):
        Watched(Rules, _write(tmp_path / "broken.yaml", "cluster: [unclosed"), "rules.yaml")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_silence_holds_notifications_until_it_is_expired(
    alerts_url: str, nats_server: NatsServer, webhook: Receiver, tmp_path: Path
) -> None:
    tokens = TokenStore.in_data_dir(tmp_path / "data")
    # a district's: a confirmed case is silenced only by a silence of a district or more
    district = tokens.create(
        scopes=[COMMUNITY[:6]], role=Role.OPERATE, name="district duty", person=DUTY
    )[1]
    headers = {"authorization": f"Bearer {district}"}
    body = {
        "matchers": [{"name": "district", "value": COMMUNITY[:6]}],
        "duration_minutes": 60,
        "comment": "known outbreak, handled on site",
    }
    created = httpx.post(f"{alerts_url}/v1/silences", json=body, headers=headers)
    assert created.status_code == 201
    neighbour = {
        "matchers": [{"name": "community", "value": "640104001001"}],
        "duration_minutes": 60,
        "comment": "not mine",
    }
    assert (
        httpx.post(f"{alerts_url}/v1/silences", json=neighbour, headers=headers).status_code == 403
    )
    unscoped = {
        "matchers": [{"name": "alertname", "value": "x"}],
        "duration_minutes": 5,
        "comment": "everything",
    }
    assert (
        httpx.post(f"{alerts_url}/v1/silences", json=unscoped, headers=headers).status_code == 422
    )

    asyncio.run(_publish_twice(nats_server.url))

    def states() -> list[str]:
        answer = httpx.get(
            f"{alerts_url}/v1/alerts", params={"state": ["firing", "silenced"]}, headers=headers
        )
        return [a["state"] for a in answer.json()["alerts"] if a["rule"] == "immediate_confirmed"]

    _wait_for(lambda: states() == ["silenced"])
    assert not any(
        b["groupLabels"]["alertname"] == "immediate_confirmed" for b in webhook.bodies("/all")
    )
    silence_id = created.json()["id"]
    assert (
        httpx.delete(f"{alerts_url}/v1/silences/{silence_id}", headers=headers).status_code == 200
    )
    [silence] = httpx.get(
        f"{alerts_url}/v1/silences", params={"include_expired": True}, headers=headers
    ).json()["silences"]
    assert (silence["created_by_person"], silence["expired_by_person"]) == (DUTY, DUTY)
    _wait_for(lambda: states() == ["firing"], timeout_s=20)
    _wait_for(
        lambda: any(
            b["groupLabels"]["alertname"] == "immediate_confirmed" for b in webhook.bodies("/all")
        )
    )


async def _alert_on_nats(url: str) -> dict[str, object]:
    client = await nats.connect(url)
    try:
        subscription = await client.subscribe("zhibao.alerts.critical.640106")
        await publish_confirmed(url)
        message = await subscription.next_msg(timeout=15)
        return dict(json.loads(message.data))
    finally:
        await client.close()


def test_alerts_are_published_on_their_nats_subject(
    alerts_url: str, nats_server: NatsServer
) -> None:
    body = asyncio.run(_alert_on_nats(nats_server.url))
    assert body["version"] == "4"
    assert body["groupLabels"] == {"alertname": "immediate_confirmed", "unit": COMMUNITY}
