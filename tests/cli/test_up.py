"""``zhibao up`` runs the whole system from embedded defaults and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from tests.cli.environment import stack_env
from tests.support.events import COMMUNITY_A, screening
from zhibao_shared.natsserver import wait_for_port

SHANGHAI = ZoneInfo("Asia/Shanghai")


def wait_for_line(process: subprocess.Popen[str], needle: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed; got:\n{''.join(lines)}")


def wait_for_district_screenings(
    aggregator: str, token: str, day: str, expected: int, timeout_s: float = 30
) -> int:
    """The district's screenings on ``day``, waiting until they reach ``expected``."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        rollup = httpx.get(
            f"{aggregator}/v1/units/640106/rollup",
            params={"date": day},
            headers={"authorization": f"Bearer {token}"},
        )
        figures = rollup.json()["figures"]
        seen = int(figures["screenings"])
        if seen >= expected:
            break
        time.sleep(0.2)
    return seen


def test_up_serves_events_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "zhibao_cli", "up"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        banner = "".join(wait_for_line(process, "Ctrl-C stops everything", 120))
        saved = (tmp_path / "data" / "first-run-tokens.txt").read_text().splitlines()
        token = next(line.split()[-1] for line in saved if "report token" in line)
        intake = f"http://127.0.0.1:{env['ZHIBAO_INTAKE_PORT']}"
        assert intake in banner
        event = screening(COMMUNITY_A)
        answer = httpx.post(
            f"{intake}/v1/events",
            json=event,
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 202
        aggregator = f"http://127.0.0.1:{env['ZHIBAO_AGGREGATOR_PORT']}"
        assert aggregator in banner
        day = datetime.fromisoformat(event["time"]).astimezone(SHANGHAI).date().isoformat()
        operator = next(line.split()[-1] for line in saved if "operate token" in line)
        assert wait_for_district_screenings(aggregator, operator, day, 1) == 1
        # the sample's report templates, filled by the street the screening was sent for
        auth = {"authorization": f"Bearer {operator}"}
        listed = httpx.get(f"{aggregator}/v1/templates", headers=auth).json()["templates"]
        assert [t["id"] for t in listed] == [
            "district-isolation",
            "district-weekly",
            "street-daily",
        ]
        daily = f"{aggregator}/v1/units/{COMMUNITY_A[:9]}/templates/street-daily.csv?date={day}"
        table = httpx.get(daily, headers=auth).text.splitlines()
        assert table[0].startswith("\ufeff黄河东路街道疫情防控日报表")
        assert table[-1].startswith("全街道合计,1,")  # the screening, in the totals
        response = f"http://127.0.0.1:{env['ZHIBAO_RESPONSE_PORT']}"
        assert response in banner
        assert httpx.get(f"{response}/readyz").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        nats_port = int(env["ZHIBAO_NATS_URL"].rsplit(":", 1)[1])
        assert not wait_for_port("127.0.0.1", nats_port, 0.5), "nats-server left running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (tmp_path / "data" / "tokens.db").read_bytes().count(token.encode())
