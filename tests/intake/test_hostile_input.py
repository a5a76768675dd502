"""Hostile payloads against a real intake process: clear 4xx, still up, memory bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.events import COMMUNITY_A, resident_id, screening
from zhibao_shared.natsserver import NatsServer, free_port, wait_for_port
from zhibao_shared.tokens import Role, TokenStore

MEMORY_BOUND_KIB = 400 * 1024


class IntakeProcess:
    def __init__(self, url: str, pid: int, token: str) -> None:
        self.url, self.pid, self.token = url, pid, token

    def post(
        self,
        content: bytes | Iterator[bytes],
        content_type: str = "application/json",
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}", "content-type": content_type}
        return httpx.post(f"{self.url}/v1/events", content=content, headers=headers, timeout=30)

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        )


@pytest.fixture
def intake_process(nats_server: NatsServer, tmp_path: Path) -> Iterator[IntakeProcess]:
    port = free_port()
    data = tmp_path / "data"
    token = TokenStore(data / "tokens.db").create(scopes=[COMMUNITY_A], role=Role.REPORT)[1]
    env = {
        **os.environ,
        "ZHIBAO_NATS_URL": nats_server.url,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_INTAKE_PORT": str(port),
        "ZHIBAO_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "zhibao_cli", "intake"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30)
        running = IntakeProcess(f"http://127.0.0.1:{port}", process.pid, token)
        yield running
    finally:
        process.terminate()
        process.wait(30)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"padding": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_hostile_payloads_get_clear_4xx_and_the_service_survives(
    intake_process: IntakeProcess,
) -> None:
    p = intake_process
    ten_mb = 10 * 1024 * 1024
    wrong_check = resident_id()[:17] + ("1" if resident_id().endswith("0") else "0")
    cases: list[tuple[str, httpx.Response, int, str]] = [
        ("deep nesting", p.post(b"[" * 200_000 + b"]" * 200_000), 400, "nested"),
        (
            "huge string",
            p.post(json.dumps(screening(compound="x" * 1_500_000)).encode()),
            422,
            "data.compound",
        ),
        ("invalid UTF-8", p.post(b'{"id": "\xc3\x28"}'), 400, "UTF-8"),
        (
            "wrong content type",
            p.post(b"a=b", "application/x-www-form-urlencoded"),
            415,
            "content type",
        ),
        ("10 MB body", p.post(b" " * ten_mb), 413, "exceeds"),
        ("10 MB chunked body", p.post(_chunks(ten_mb)), 413, "exceeds"),
        (
            "100,000-item batch",
            p.post(b"[" + b",".join([b"1"] * 100_000) + b"]", "application/cloudevents-batch+json"),
            413,
            "at most",
        ),
        (
            "year 9999",
            p.post(json.dumps(screening(when=datetime(9999, 1, 1, tzinfo=UTC))).encode()),
            422,
            "future",
        ),
        (
            "unknown community",
            p.post(json.dumps(screening("640106009009")).encode()),
            422,
            "not a known community",
        ),
        (
            "wrong check digit",
            p.post(json.dumps(screening(person={"id_number": wrong_check})).encode()),
            422,
            "check digit",
        ),
    ]
    for name, answer, status, phrase in cases:
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text[:200]}"
        assert phrase in answer.text, f"{name}: {answer.text[:300]}"
    assert wrong_check not in cases[-1][1].text
    [refused_subject] = cases[-2][1].json()["results"]
    assert "640106009009" not in json.dumps(refused_subject["errors"]), "nor its subject"
    assert httpx.get(f"{p.url}/healthz").status_code == 200
    assert p.post(json.dumps(screening()).encode()).status_code == 202
    assert p.rss_kib() < MEMORY_BOUND_KIB, f"intake grew to {p.rss_kib()} KiB"


def test_values_too_long_to_be_valid_are_not_repeated_in_the_answer(
    intake_process: IntakeProcess,
) -> None:
    """An event id of 1.8 MB (and a field named with 100,000 characters) was masked whole
    before being cut for the answer: two seconds of intake's event loop per request, for
    every community. A value longer than any valid one is now not repeated at all."""
    event = screening()
    event["id"] = "19" * 900_000
    event["data"]["k" * 100_000] = 1
    event["data"][""] = 2  # an empty name is not "too long"
    answer = intake_process.post(json.dumps(event).encode())
    assert answer.status_code == 422, answer.text[:300]
    [result] = answer.json()["results"]
    assert "id" not in result, "not repeated"
    fields = [error["field"] for error in result["errors"]]
    assert fields.count("data.(a name too long to repeat)") == 1, fields
    assert "kkkk" not in answer.text
