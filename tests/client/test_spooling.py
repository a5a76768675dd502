"""The community client never loses an event: spooled while intake can't take it, sent once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import uvicorn

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_client import ZhibaoClient
from zhibao_intake.bootstrap import create_app
from zhibao_shared.natsserver import free_port


def test_events_wait_in_the_spool_while_nats_is_down_and_arrive_once(
    intake: RunningIntake, tmp_path: Path
) -> None:
    client = ZhibaoClient(intake.url, intake.token(COMMUNITY_A), tmp_path / "spool.db")
    events = [screening() for _ in range(30)]
    intake.nats.stop()
    report = client.submit(events)
    assert report.delivered == 0 and report.spooled == 30
    assert report.retry_after_s is not None
    intake.nats.start()
    intake.wait_ready()
    drained = client.drain_until_empty(max_wait_s=30)
    assert drained.spooled == 0
    assert drained.accepted + drained.duplicates == 30
    stored = [e["id"] for _s, e in stored_events(intake.nats.url)]
    assert sorted(stored) == sorted(e["id"] for e in events), "each event stored exactly once"


def test_the_spool_survives_a_restart_of_the_client(intake: RunningIntake, tmp_path: Path) -> None:
    token = intake.token(COMMUNITY_A)
    offline = ZhibaoClient(f"http://127.0.0.1:{free_port()}", token, tmp_path / "spool.db")
    assert offline.submit([screening() for _ in range(5)]).spooled == 5
    offline.close()
    online = ZhibaoClient(intake.url, token, tmp_path / "spool.db")
    report = online.drain()
    assert (report.accepted, report.spooled) == (5, 0)
    assert len(stored_events(intake.nats.url)) == 5


def test_a_downed_intake_is_waited_out_then_each_event_arrives_once(
    intake: RunningIntake, tmp_path: Path
) -> None:
    """Intake's port closed (server down), events submitted, later the server is back."""
    token = intake.token(COMMUNITY_A)
    port = free_port()
    client = ZhibaoClient(f"http://127.0.0.1:{port}", token, tmp_path / "spool.db", timeout_s=2)
    first = [screening() for _ in range(4)]
    report = client.submit(first)
    assert (report.delivered, report.spooled) == (0, 4)
    assert client.backoff_s > 0
    report = client.submit([screening()])
    assert (report.delivered, report.spooled) == (0, 5), "backing off: spooled, not sent"
    client.close()
    relay = _Relay(port, intake)
    try:
        client = ZhibaoClient(f"http://127.0.0.1:{port}", token, tmp_path / "spool.db")
        client.add(first)  # handing the same events over again changes nothing
        drained = client.drain_until_empty(max_wait_s=30)
    finally:
        relay.close()
    assert (drained.accepted, drained.spooled) == (5, 0)
    assert len(stored_events(intake.nats.url)) == 5


def test_rejected_events_are_returned_with_reasons_not_retried(
    intake: RunningIntake, tmp_path: Path
) -> None:
    client = ZhibaoClient(intake.url, intake.token(COMMUNITY_A), tmp_path / "spool.db")
    report = client.submit([screening(), screening(temperature=99.0)])
    assert report.accepted == 1 and report.spooled == 0
    [rejection] = report.rejected
    assert rejection.event["data"]["temperature_c"] == 99.0
    assert rejection.code == "invalid"
    assert rejection.errors[0]["field"] == "data.temperature_c"
    assert client.pending == 0, "a rejected event is not kept for retrying"
    assert len(stored_events(intake.nats.url)) == 1


def test_zhibao_send_command(intake: RunningIntake, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from zhibao_cli.main import app

    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(screening()) for _ in range(3)))
    result = CliRunner().invoke(
        app,
        [
            "send",
            str(source),
            "--url",
            intake.url,
            "--token",
            intake.token(COMMUNITY_A),
            "--spool",
            str(tmp_path / "s.db"),
            "--wait",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accepted 3" in result.output


class _Relay:
    """A second real intake instance (same NATS, same tokens) started on a chosen port."""

    def __init__(self, port: int, intake: RunningIntake) -> None:
        settings = intake.settings.model_copy(update={"intake_port": port})
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        RunningIntake(f"http://127.0.0.1:{port}", settings, intake.tokens, intake.nats).wait_ready()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
