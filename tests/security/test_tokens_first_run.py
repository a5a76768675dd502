"""``zhibao up`` never writes first-run tokens to its output (which may be a log file)."""

from __future__ import annotations

import getpass
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.environment import stack_env
from tests.security.tokens_support import bearer
from tests.support.events import COMMUNITY_A, screening
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration
SECRET = re.compile(r"zb_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def wait_for_text(path: Path, needle: str, process: subprocess.Popen[bytes]) -> str:
    """The file's text once it holds ``needle`` (the process must stay up meanwhile)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        text = path.read_text(errors="replace")
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not written; got:\n{path.read_text(errors='replace')}")


def test_first_run_tokens_go_to_an_owner_only_file_not_to_redirected_output(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    data = Path(env["ZHIBAO_DATA_DIR"])
    out, err = tmp_path / "up.log", tmp_path / "up.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "zhibao_cli", "up"], env=env, stdout=stdout, stderr=stderr
        )
    try:
        banner = wait_for_text(out, "Ctrl-C stops everything", process)
        saved = data / "first-run-tokens.txt"
        assert str(saved) in banner
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        tokens = {
            " ".join(line.split()[:4]).rstrip(":"): SECRET.search(line)[0]  # type: ignore[index]
            for line in saved.read_text().splitlines()
        }
        # the sample city's tokens, and the province's command centre above it
        assert set(tokens) == {
            "report token (city 6401)",
            "operate token (city 6401)",
            "operate token (province 64)",
        }
        tokens["report"], tokens["operate"] = (
            tokens["report token (city 6401)"],
            tokens["operate token (city 6401)"],
        )
        intake = f"http://127.0.0.1:{env['ZHIBAO_INTAKE_PORT']}"
        posted = httpx.post(
            f"{intake}/v1/events", json=screening(COMMUNITY_A), headers=bearer(tokens["report"])
        )
        assert posted.status_code == 202, posted.text
        aggregator = f"http://127.0.0.1:{env['ZHIBAO_AGGREGATOR_PORT']}"
        unit = httpx.get(f"{aggregator}/v1/units/6401", headers=bearer(tokens["operate"]))
        assert unit.status_code == 200, unit.text
        province = "operate token (province 64)"
        above = httpx.get(f"{aggregator}/v1/units/64", headers=bearer(tokens[province]))
        assert above.status_code == 200, above.text
        assert above.json()["unit"]["level"] == "province", above.text
        outside = httpx.get(f"{aggregator}/v1/units/64", headers=bearer(tokens["operate"]))
        assert outside.status_code == 403, "the city's token does not see the province"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    written = out.read_text(errors="replace") + err.read_text(errors="replace")
    for log in data.glob("logs/*"):
        written += log.read_text(errors="replace")
    assert not SECRET.search(written), "a token secret was written to the output or a log"
    assert all(secret not in written for secret in tokens.values())
    store = TokenStore.configured(ZhibaoSettings(data_dir=data))
    try:
        persons = {token.name: (token.role, token.person) for token in store.list()}
    finally:
        store.close()
    # acknowledging takes a personal token: the operators' name the local account
    operator = f"{getpass.getuser()} (operator)"
    assert (
        persons["first-run-operator"] == persons["first-run-province"] == (Role.OPERATE, operator)
    )
