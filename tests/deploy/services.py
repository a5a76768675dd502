"""Zhibao's services as real processes (``zhibao intake`` …), configured as deploy/ does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from zhibao_cli.stack import wait_ready
from zhibao_shared.natsserver import free_port

ZHIBAO = str(Path(sys.executable).parent / "zhibao")


@dataclass
class ServiceProcess:
    """One ``zhibao <service>`` process on a free loopback port."""

    service: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Start it and wait until /readyz answers 200."""
        env = {**os.environ, **self.env, f"ZHIBAO_{self.service.upper()}_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [ZHIBAO, self.service],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        process = self.process
        if wait_ready(self.url, timeout_s, alive=lambda: process.poll() is None):
            return
        if process.poll() is not None:
            raise AssertionError(f"{self.service} exited: {self.log.read_text()[-3000:]}")
        self.stop()
        raise AssertionError(f"{self.service} not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (drain), then kill if it lingers."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def zhibao(*args: str, env: dict[str, str]) -> str:
    """Run a one-shot ``zhibao`` command (migrate, token create); returns its stdout."""
    result = subprocess.run(
        [ZHIBAO, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def token(env: dict[str, str], scope: str, role: str) -> str:
    """A new bearer token (the secret is the last line ``zhibao token create`` prints)."""
    out = zhibao("token", "create", "--scope", scope, "--role", role, "--name", role, env=env)
    return out.strip().splitlines()[-1].strip()


def confirmed_case(community: str, event_id: str) -> dict[str, object]:
    """A confirmed-case CloudEvent reported now."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/{community}/deploy-test",
        "type": "zhibao.case.v1",
        "subject": community,
        "time": datetime.now(UTC).isoformat(),
        "data": {"classification": "confirmed", "person": {"ref": f"p-{event_id}"}},
    }


def post_batch(intake_url: str, report_token: str, events: list[dict[str, object]]) -> None:
    """Post a batch and require every event accepted (202)."""
    response = httpx.post(
        f"{intake_url}/v1/events",
        json=events,
        headers={
            "Authorization": f"Bearer {report_token}",
            "Content-Type": "application/cloudevents-batch+json",
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)


def figure(
    aggregator_url: str, read_token: str, unit: str, name: str, *, expect: int, wait_s: float = 30
) -> int:
    """A unit's figure for today, polled until it equals ``expect`` or ``wait_s`` passes."""
    deadline = time.monotonic() + wait_s
    value = -1
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{aggregator_url}/v1/units/{unit}/rollup",
            headers={"Authorization": f"Bearer {read_token}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        value = int(response.json()["figures"][name])
        if value == expect:
            return value
        time.sleep(0.2)
    return value
