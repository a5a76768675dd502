"""The real services run with exactly the permissions accounts.conf grants them.

Too narrow a permission would break a deployment only at run time (a stream that
cannot be declared, a consumer that cannot fetch). Here intake, aggregator and
alerts run as processes, each as its own NATS user against a nats-server with the
shipped accounts.conf (the command-centre page's live feed as the read-only
dashboard user), and a reported case reaches the rollups, the live page and an
alert with no permission violation anywhere; and a task the response service
announces overdue reaches the alerts service's tasks consumer the same way.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.deploy.services import (
    ServiceProcess,
    confirmed_case,
    figure,
    post_batch,
    token,
    zhibao,
)
from tests.deploy.support import server_env, single_node_config, user_url
from tests.support.sse import Events
from zhibao_shared.natsserver import free_port, nats_server_binary, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

COMMUNITY = "640106001001"


@contextmanager
def live_stream(aggregator_url: str, read_token: str) -> Iterator[Events]:
    """The command-centre page's live feed, as a browser opens it."""
    with httpx.stream(
        "GET",
        f"{aggregator_url}/v1/live",
        params={"access_token": read_token, "unit": "640106"},
        timeout=httpx.Timeout(10.0),
    ) as answer:
        assert answer.status_code == 200, answer.read()
        yield Events(answer.iter_lines())


@pytest.fixture
def nats_with_accounts(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """nats-server with the shipped accounts; yields its port and log file."""
    port = free_port()
    log = tmp_path / "nats.log"
    process = subprocess.Popen(
        [nats_server_binary(), "--config", str(single_node_config(tmp_path / "nats", port))],
        env=server_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    assert wait_for_port("127.0.0.1", port, 15), log.read_text()
    try:
        yield port, log
    finally:
        process.terminate()
        process.wait(10)


def test_a_case_flows_through_services_each_with_its_own_nats_user(
    nats_with_accounts: tuple[int, Path], tmp_path: Path
) -> None:
    """intake stores it, the aggregator counts it, alerts raises an alert; no violations."""
    port, nats_log = nats_with_accounts
    env = {
        "ZHIBAO_DATA_DIR": str(tmp_path / "data"),
        "ZHIBAO_PSEUDONYM_KEY": "deploy-test-pseudonym-key-0123456789abcdef",
        "ZHIBAO_LOG_JSON": "true",
    }
    zhibao("aggregator", "migrate", env=env)
    zhibao("alerts", "migrate", env=env)
    services = [
        ServiceProcess(
            name, {**env, "ZHIBAO_NATS_URL": user_url(name, port)}, tmp_path / f"{name}.log"
        )
        for name in ("intake", "aggregator", "alerts")
    ]
    intake, aggregator, alerts = services
    aggregator.env["ZHIBAO_DASHBOARD_NATS_URL"] = user_url("dashboard", port)
    aggregator.env["ZHIBAO_ALERTS_URL"] = alerts.url
    aggregator.env["ZHIBAO_DASHBOARD_HEARTBEAT_S"] = "1"
    try:
        for service in services:
            service.start()
        read = token(env, "640106", "read")
        with live_stream(aggregator.url, read) as page:
            page.wait_live()
            post_batch(
                intake.url, token(env, "640106", "report"), [confirmed_case(COMMUNITY, "c-1")]
            )
            pushed = page.until("rollup", "640106")
            assert pushed["figures"]["new_confirmed"] == 1  # type: ignore[index]
            rules: list[object] = []
            while "immediate_confirmed" not in rules and len(rules) < 5:
                rules.append(page.until("alert", COMMUNITY)["rule"])
            assert "immediate_confirmed" in rules, rules
        assert figure(aggregator.url, read, COMMUNITY, "new_confirmed", expect=1) == 1

        operate = token(env, "640106", "operate")
        deadline = time.monotonic() + 30
        found: list[object] = []
        while not found and time.monotonic() < deadline:
            response = httpx.get(
                f"{alerts.url}/v1/alerts",
                params={"unit": COMMUNITY},
                headers={"Authorization": f"Bearer {operate}"},
                timeout=5,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            found = body if isinstance(body, list) else body.get("alerts") or body.get("items", [])
            time.sleep(0.2)
        assert found, "no alert raised for a confirmed case"
    finally:
        for service in services:
            service.stop()
    violations = [line for line in nats_log.read_text().splitlines() if "Violation" in line]
    assert violations == []


def test_an_overdue_task_reaches_alerts_each_service_with_its_own_nats_user(
    nats_with_accounts: tuple[int, Path], tmp_path: Path
) -> None:
    """The response service (user ``response``) announces a task past due; the alerts
    service (user ``alerts``) reads it through its tasks consumer and raises
    task_overdue; neither hits a permission violation."""
    port, nats_log = nats_with_accounts
    env = {
        "ZHIBAO_DATA_DIR": str(tmp_path / "data"),
        "ZHIBAO_PSEUDONYM_KEY": "deploy-test-pseudonym-key-0123456789abcdef",
        "ZHIBAO_LOG_JSON": "true",
        "ZHIBAO_RESPONSE_CHECK_INTERVAL_S": "0.2",
        "ZHIBAO_ALERTS_TASKS_FETCH_S": "0.1",
    }
    zhibao("alerts", "migrate", env=env)
    zhibao("response", "migrate", env=env)
    services = [
        ServiceProcess(
            name, {**env, "ZHIBAO_NATS_URL": user_url(name, port)}, tmp_path / f"{name}.log"
        )
        for name in ("response", "alerts")
    ]
    response, alerts = services
    try:
        for service in services:
            service.start()
        operate = token(env, "640106", "operate")
        headers = {"Authorization": f"Bearer {operate}"}
        due = datetime.now(UTC) - timedelta(minutes=1)
        issued = httpx.post(
            f"{response.url}/v1/tasks",
            json=[{"unit": COMMUNITY, "kind": "disinfect", "due": due.isoformat()}],
            headers=headers,
            timeout=10,
        )
        assert issued.status_code == 201, issued.text
        [task_id] = issued.json()["ids"]
        deadline = time.monotonic() + 30
        raised: list[dict[str, object]] = []
        while not raised and time.monotonic() < deadline:
            answer = httpx.get(
                f"{alerts.url}/v1/alerts", params={"unit": COMMUNITY}, headers=headers, timeout=5
            )
            assert answer.status_code == 200, answer.text
            raised = [a for a in answer.json()["alerts"] if a["rule"] == "task_overdue"]
            time.sleep(0.2)
        assert raised, "no task_overdue alert for a task past due"
        assert task_id in str(raised[0]["summary_en"])
    finally:
        for service in services:
            service.stop()
    violations = [line for line in nats_log.read_text().splitlines() if "Violation" in line]
    assert violations == []
