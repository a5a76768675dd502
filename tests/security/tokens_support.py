"""Shared by the token security tests: the ``zhibao`` command and a stack of real processes.

``token_stack`` runs nats-server and the three services as separate processes
(``zhibao_cli.stack.Stack``, as ``zhibao up`` does) on one data directory, with
the live stream re-checking its token every second. ``zhibao`` runs the real CLI
in a subprocess with the stack's environment.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.environment import stack_env
from zhibao_cli.stack import Stack

#: How often the aggregator re-checks a live stream's token in these tests.
RECHECK_S = 1.0


def zhibao(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``zhibao <args>`` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "zhibao_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command wrote to stderr, without the error box and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())


def create_token(env: dict[str, str], *args: str) -> str:
    """``zhibao token create <args>``; the secret (its last line)."""
    created = zhibao(env, "token", "create", *args)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def token_id(secret: str) -> str:
    """The id part of a ``zb_<id>_<random>`` secret (what ``list`` shows)."""
    return secret.split("_", 2)[1]


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"authorization": f"Bearer {secret}"}


@dataclass
class TokenStack:
    """The running processes and the environment the CLI shares with them."""

    stack: Stack
    env: dict[str, str]

    @property
    def intake(self) -> str:
        """Intake's base URL."""
        return self.stack.url("intake")

    @property
    def aggregator(self) -> str:
        """The aggregator's base URL (also serves the page and its live stream)."""
        return self.stack.url("aggregator")

    @property
    def alerts(self) -> str:
        """The alerts service's base URL."""
        return self.stack.url("alerts")


@pytest.fixture(scope="module")
def token_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenStack]:
    """nats-server, intake, aggregator and alerts as processes sharing one token store."""
    root: Path = tmp_path_factory.mktemp("tokens")
    env = stack_env(root)
    env["ZHIBAO_DASHBOARD_TOKEN_RECHECK_S"] = str(RECHECK_S)
    env["ZHIBAO_LOG_LEVEL"] = "WARNING"
    data = Path(env["ZHIBAO_DATA_DIR"])
    with Stack(env=env, data_dir=data, nats_url=env["ZHIBAO_NATS_URL"], quiet=True) as stack:
        yield TokenStack(stack, env)
