"""``zhibao up --demo``: the simulator fills the system, the page link signs in, alerts fire."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.cli.environment import stack_env
from tests.cli.test_up import wait_for_line
from zhibao_shared.tokens import TokenStore

pytestmark = pytest.mark.timeout(480)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def demo_done(log: Path, timeout_s: float) -> int:
    """Wait for the demo's closing line; returns the events intake accepted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"demo: done\..* accepted ([\d,]+)", log.read_text())
        if found:
            return int(found.group(1).replace(",", ""))
        time.sleep(0.5)
    raise AssertionError(f"the demo did not finish; its output:\n{log.read_text()[-3000:]}")


def get(url: str, token: str, **params: Any) -> Any:
    """GET a JSON answer with a bearer token, asserting 200."""
    answer = httpx.get(url, params=params, headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def city_events(aggregator: str, token: str, expected: int, timeout_s: float = 60) -> int:
    """Events counted for the city over the demo's two weeks, once they reach ``expected``."""
    today = datetime.now(SHANGHAI).date()
    params = {"metric": "events", "from": (today - timedelta(days=14)).isoformat()}
    counted = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and counted < expected:
        series = get(f"{aggregator}/v1/units/6401/series", token, **params, to=today.isoformat())
        counted = sum(int(point["value"] or 0) for point in series["points"])
        time.sleep(0.5)
    return counted


def wait_for_needs(aggregator: str, token: str, timeout_s: float = 60) -> dict[str, Any]:
    """The city's rollup figures, once they count open needs (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        figures: dict[str, Any] = get(f"{aggregator}/v1/units/6401/rollup", token)["figures"]
        if figures["needs_open"] or time.monotonic() > deadline:
            return figures
        time.sleep(0.5)


def test_demo_feeds_the_system_and_its_link_signs_in(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "zhibao_cli", "up", "--demo", "--seconds-per-day", "0.2"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
    )
    try:
        banner = "".join(wait_for_line(process, "Ctrl-C stops everything", 120))
        aggregator = f"http://127.0.0.1:{env['ZHIBAO_AGGREGATOR_PORT']}"
        link = re.search(rf"{re.escape(aggregator)}/#token=(\S+)", banner)
        assert link, banner
        token = link.group(1)
        assert "<!doctype html" in httpx.get(f"{aggregator}/").text.lower()

        accepted = demo_done(log, 360)
        assert accepted > 10_000
        assert city_events(aggregator, token, accepted) == accepted
        # the whole city reports: every district, each with its communities' daily closes
        today = datetime.now(SHANGHAI).date()
        yesterday = (today - timedelta(days=1)).isoformat()
        districts = get(f"{aggregator}/v1/units/6401/children", token, date=yesterday)
        assert len(districts["children"]) == 6
        assert all(int(d["figures"]["events"] or 0) > 0 for d in districts["children"])
        closes = get(f"{aggregator}/v1/units/6401/completeness", token, date=yesterday)
        assert closes["expected"] == 323 and closes["reported"] >= 280, closes["missing"]
        # residents who need help: the registers, and needs the response service made tasks
        figures = wait_for_needs(aggregator, token)
        assert sum(figures["key_persons"].values()) > 3000, figures["key_persons"]
        assert figures["needs_open"] > 0, figures

        alerts = f"http://127.0.0.1:{env['ZHIBAO_ALERTS_PORT']}"
        raised = get(f"{alerts}/v1/alerts", token, limit=500)
        items = raised if isinstance(raised, list) else raised["alerts"]
        rules = {alert["rule"] for alert in items}
        assert "immediate_confirmed" in rules, rules
        for outbreak in ("640106001002", "640104006003"):  # Jinfeng's, then Xingqing's
            found = get(f"{alerts}/v1/alerts", token, unit=outbreak, limit=500)["alerts"]
            assert "immediate_confirmed" in {a["rule"] for a in found}, outbreak
        panel = get(f"{aggregator}/v1/alerts", token, unit="640106", limit=500)
        assert "immediate_confirmed" in {alert["rule"] for alert in panel["alerts"]}, "the panel"

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    store = TokenStore.in_data_dir(tmp_path / "data")
    try:
        demo_tokens = [t for t in store.list() if t.name.startswith("demo-")]
        assert len(demo_tokens) == 2
        assert all(t.revoked_at is not None for t in demo_tokens), "demo tokens outlive the demo"
        assert store.authenticate(token) is None
    finally:
        store.close()
