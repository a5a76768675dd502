"""``zhibao simulate`` against a real intake: every simulated event is accepted, once."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from tests.support.intake import RunningIntake
from tests.support.stream import stored_events
from zhibao_client.cli import app


def number(label: str, output: str) -> int:
    found = re.search(rf"{label} ([\d,]+)", output)
    assert found, f"{label!r} not in {output!r}"
    return int(found.group(1).replace(",", ""))


def test_a_short_simulation_is_accepted_in_full_duplicates_and_all(
    intake: RunningIntake, tmp_path: Path
) -> None:
    args = ["simulate", "--days", "2", "--scale", "0.0005", "--outbreak", "--seed", "4"]
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--duplicates",
            "0.05",
            "--reorder",
            "20",
            "--url",
            intake.url,
            "--token",
            intake.token("6401"),
            "--spool",
            str(tmp_path / "sim.spool"),
        ],
    )
    assert result.exit_code == 0, result.output
    generated = number("communities:", result.output)
    tally = result.output.split("intake:")[1]
    assert number("accepted", tally) == generated
    assert number("sent", tally) > generated, "resent copies went through the client too"
    assert "rejected 0, still spooled 0" in result.output
    assert re.search(r"\d{4}-\d{2}-\d{2} \| sent [\d,]+ \(.*screening", result.output)
    assert number("key persons:", result.output) > 3000, "every community's register"
    assert number("needs: raised", result.output) > 0
    stored = [e["id"] for _s, e in stored_events(intake.nats.url)]
    assert len(stored) == len(set(stored)) == generated, "each event stored once"


def test_simulate_can_write_the_events_instead_of_posting(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    args = ["simulate", "--days", "1", "--scale", "0.0005", "--start", "2026-01-01"]
    result = CliRunner().invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(app, [*args, "--output", str(again)])
    lines = out.read_text("utf-8").splitlines()
    assert lines and lines == again.read_text("utf-8").splitlines()
    assert number("communities:", result.output) == len(lines)


def test_a_paced_simulation_sends_day_by_day(intake: RunningIntake, tmp_path: Path) -> None:
    # Two whole past days: simulating up to today stops at the present moment,
    # which early in the district's morning holds no event of the second day.
    args = ["simulate", "--days", "2", "--start", "2026-03-01", "--scale", "0.0003"]
    args += ["--seconds-per-day", "0.5"]
    spool = str(tmp_path / "sim.spool")
    token = intake.token("6401")
    result = CliRunner().invoke(
        app, [*args, "--url", intake.url, "--token", token, "--spool", spool]
    )
    assert result.exit_code == 0, result.output
    days = re.findall(r"^(\d{4}-\d{2}-\d{2}) \| sent", result.output, flags=re.MULTILINE)
    assert len(set(days)) >= 2, "progress shown for each simulated day"
    assert len({e["id"] for _s, e in stored_events(intake.nats.url)}) == number(
        "communities:", result.output
    )
