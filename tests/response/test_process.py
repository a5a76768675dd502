"""The response service as a process (as ``zhibao up`` runs it, its own bus user): nothing
personal in its log or in any file of the data directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.response.conftest import a_task
from tests.response.test_tasks import PERSONAL
from zhibao_cli.stack import Stack
from zhibao_shared.natsserver import free_port
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "ZHIBAO_DATA_DIR": str(data),
        "ZHIBAO_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ZHIBAO_RESPONSE_PORT": str(free_port()),
        "ZHIBAO_LOG_JSON": "true",
    }
    tokens = TokenStore.in_data_dir(data)
    operator = tokens.create(scopes=["640106"], role=Role.OPERATE, name="district")[1]
    tokens.close()
    running = Stack(
        env=env,
        data_dir=data,
        nats_url=env["ZHIBAO_NATS_URL"],
        names=("response",),
        log_dir=tmp_path / "logs",
    )
    with running:
        yield running, operator


def test_nothing_personal_is_logged_or_stored_in_the_clear(
    stack: tuple[Stack, str], tmp_path: Path
) -> None:
    running, operator = stack
    url = running.url("response")
    headers = {"authorization": f"Bearer {operator}"}
    issued = httpx.post(f"{url}/v1/tasks", json=[a_task(), a_task()], headers=headers)
    assert issued.status_code == 201
    bad = [a_task(person={"id_number": PERSONAL[-1][:-1] + "0"}), a_task("640106999999")]
    assert httpx.post(f"{url}/v1/tasks", json=bad, headers=headers).status_code == 422
    task_id = issued.json()["ids"][0]
    shown = httpx.get(f"{url}/v1/tasks/{task_id}", headers=headers).json()
    assert shown["contact"]["phone"] == PERSONAL[1]  # the issuer reads them back
    assert running.nats is not None
    running.nats.stop()  # publishing now fails, and is logged
    assert httpx.post(f"{url}/v1/tasks", json=[a_task()], headers=headers).status_code == 201
    log = tmp_path / "logs" / "response.log"
    deadline = time.monotonic() + 60
    while "task_messages_not_published" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    running.nats.start()
    running.stop_service("response")
    text = log.read_text()
    assert "response_connected" in text and "task_messages_not_published" in text
    assert not [value for value in PERSONAL if value in text]
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.startswith("response.db") for p in files)
    leaked = {
        (p.name, value) for p in files for value in PERSONAL if value.encode() in p.read_bytes()
    }
    assert leaked == set()
