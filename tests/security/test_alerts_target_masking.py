"""Attack: any token holder (even read-only) reads the robots' access tokens, the webhook
credentials and the on-call staff's e-mail addresses from the alert and delivery
endpoints (targets, and errors that quote them), and can then post into the on-call
groups. Now every target and error is masked, for every role, and so are the logs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.conftest import confirmed
from tests.alerts.service_process import publish as publish_events
from tests.alerts.service_process import running_alerts, wait_for
from zhibao_shared.natsserver import NatsServer, free_port
from zhibao_shared.tokens import Role

STREET = "640106001"
COMMUNITY = f"{STREET}001"
DING_TOKEN = "dingaccesstoken0123456789"
DING_SECRET = "SECdingsigningsecret0123456789abcdef"
WECOM_KEY = "wecomkey-0123-4567-89ab"
FEISHU_HOOK = "feishuhooktoken0123456789abcdef"
WEBHOOK_PASSWORD = "webhookpassword99"
WEBHOOK_TOKEN = "webhookquerytoken77"
EMAIL = "duty.officer@example.org"
SECRETS = (DING_TOKEN, DING_SECRET, WECOM_KEY, FEISHU_HOOK, WEBHOOK_PASSWORD, WEBHOOK_TOKEN, EMAIL)


@pytest.fixture
def echoing_receiver() -> Iterator[str]:
    """Robots on loopback; the DingTalk one refuses, quoting the URL it was called on
    (as a receiver's error message may)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            answer: dict[str, Any] = {"errcode": 0}
            if self.path.startswith("/ding"):
                answer = {"errcode": 310000, "errmsg": f"sign not match for {self.path}"}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _oncall(host: str) -> str:
    person = {
        "name": "grid worker",
        "webhook": f"http://duty:{WEBHOOK_PASSWORD}@{host}/hook?token={WEBHOOK_TOKEN}",
        "dingtalk": {"url": f"http://{host}/ding?access_token={DING_TOKEN}", "secret": DING_SECRET},
        "wecom": {"url": f"http://{host}/wecom?key={WECOM_KEY}"},
        "feishu": {"url": f"http://{host}/open-apis/bot/v2/hook/{FEISHU_HOOK}"},
        "email": EMAIL,
    }
    oncall = {
        "smtp": {"host": "127.0.0.1", "port": free_port()},  # nobody listens: mail fails
        "rotations": [
            {"unit": COMMUNITY, "start": "2026-01-01T00:00:00+08:00", "people": [person]}
        ],
    }
    return json.dumps(oncall)


def test_no_endpoint_or_log_shows_a_notification_target_in_full(
    tmp_path: Path, nats_server: NatsServer, echoing_receiver: str
) -> None:
    with running_alerts(tmp_path, nats_server, _oncall(echoing_receiver)) as alerts:
        _id, operator = alerts.token(STREET, Role.OPERATE)
        _id, reader = alerts.token(COMMUNITY, Role.READ)
        publish_events(alerts.nats_url, [confirmed(community=COMMUNITY)])

        def deliveries(status: str) -> list[dict[str, Any]]:
            answer = alerts.call("GET", "/v1/notifications", operator, params={"status": status})
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["notifications"]
            return found

        def tried() -> bool:
            pending = deliveries("pending")
            return {n["channel"] for n in deliveries("sent")} >= {
                "webhook",
                "wecom",
                "feishu",
            } and {n["channel"] for n in pending if n["last_error"]} >= {"dingtalk", "email"}

        wait_for(tried, timeout_s=60)
        alert_id = alerts.call("GET", "/v1/alerts", reader).json()["alerts"][0]["id"]
        answers = [
            alerts.call("GET", f"/v1/alerts/{alert_id}", reader).text,
            alerts.call("GET", f"/v1/alerts/{alert_id}", operator).text,
            alerts.call("GET", "/v1/alerts", operator).text,
            *(json.dumps(deliveries(s)) for s in ("pending", "sent", "failed")),
            alerts.call("GET", "/v1/notifications", reader).text,  # read role: refused
        ]
        log = alerts.log.read_text()
    for text in [*answers, log]:
        for secret in SECRETS:
            assert secret not in text
        assert "duty:" not in text, "webhook userinfo"

    shown = json.loads(answers[1])["notifications"]
    targets = {n["channel"]: n["target"] for n in shown}
    host = echoing_receiver
    assert targets["dingtalk"] == f"http://{host}/ding?access_token=***"
    assert targets["wecom"] == f"http://{host}/wecom?key=***"
    assert targets["feishu"] == f"http://{host}/open-apis/bot/v2/hook/***"
    assert targets["webhook"] == f"http://{host}/hook?token=***"
    assert targets["email"] == "d***@example.org"
    errors = {n["channel"]: n["last_error"] for n in shown}
    assert "sign not match for /ding?access_token=***&timestamp=***&sign=***" in errors["dingtalk"]
    assert len({n["target_id"] for n in shown}) == len(shown), "targets stay distinguishable"
