"""The community client never loses an event: spooled while intake can't take it, sent once."""

from __future__ import annotations

from pathlib import Path

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from tests.support.stream import stored_messages
from zhibao_client import ZhibaoClient
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
    ids = sorted(p for _s, p, _h in stored_messages(intake.nats.url))
    assert len(ids) == 30, "each event stored exactly once"


def test_the_spool_survives_a_restart_of_the_client(intake: RunningIntake, tmp_path: Path) -> None:
    token = intake.token(COMMUNITY_A)
    offline = ZhibaoClient(f"http://127.0.0.1:{free_port()}", token, tmp_path / "spool.db")
    assert offline.submit([screening() for _ in range(5)]).spooled == 5
    offline.close()
    online = ZhibaoClient(intake.url, token, tmp_path / "spool.db")
    report = online.drain()
    assert (report.accepted, report.spooled) == (5, 0)
    assert len(stored_messages(intake.nats.url)) == 5


def test_rejected_events_are_returned_with_reasons_not_retried(
    intake: RunningIntake, tmp_path: Path
) -> None:
    client = ZhibaoClient(intake.url, intake.token(COMMUNITY_A), tmp_path / "spool.db")
    report = client.submit([screening(), screening(temperature=99.0)])
    assert report.accepted == 1 and report.spooled == 0
    [(event, errors)] = report.rejected
    assert event["data"]["temperature_c"] == 99.0
    assert errors[0]["field"] == "data.temperature_c"


def test_zhibao_send_command(intake: RunningIntake, tmp_path: Path) -> None:
    import json

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
