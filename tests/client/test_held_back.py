"""A token over its storage budget: `zhibao send` keeps the events spooled and says why,
rather than that intake is unreachable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.events import COMMUNITY_A, screening
from tests.support.intake import RunningIntake
from zhibao_cli.main import app
from zhibao_client import ZhibaoClient


@pytest.fixture
def intake_overrides() -> dict[str, Any]:
    return {"intake_daily_bytes_per_community": 20_000}


def test_send_says_the_token_s_budget_holds_the_events_back(
    intake: RunningIntake, tmp_path: Path
) -> None:
    token = intake.token(COMMUNITY_A)
    while intake.post(token, [screening() for _ in range(40)]).status_code == 202:
        pass  # the day's 20,000 bytes spent
    events = tmp_path / "events.json"
    events.write_text(json.dumps([screening() for _ in range(5)]), encoding="utf-8")
    spool = tmp_path / "spool.db"
    args = ["send", str(events), "--url", intake.url, "--token", token]
    result = CliRunner().invoke(app, [*args, "--spool", str(spool), "--wait", "0"])
    assert result.exit_code == 1
    assert "still spooled 5" in result.output
    assert "holds them back: this token's daily storage budget is spent" in result.output
    assert "unreachable" not in result.output
    client = ZhibaoClient(intake.url, token, spool)
    try:
        again = client.submit([])  # backing off: answered from what intake said last
        assert again.spooled == 5
        assert again.held_back is not None and "storage budget" in again.held_back
    finally:
        client.close()
