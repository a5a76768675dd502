"""The one parameterised Dockerfile: what it copies exists, what it runs is a real command."""

from __future__ import annotations

import re
import tomllib

from typer.testing import CliRunner

from tests.deploy.support import DEPLOY, REPO
from zhibao_cli.main import app

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SERVICES = {"intake", "aggregator", "alerts", "response"}
PORTS = {"intake": 8101, "aggregator": 8102, "alerts": 8103, "response": 8104}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_the_service_argument_names_real_cli_commands() -> None:
    """The SERVICE values the build accepts are exactly the CLI's service commands."""
    text = DOCKERFILE.read_text()
    accepted = set(re.search(r"\n\s+(\w+(?:\|\w+)+)\)", text).group(1).split("|"))  # type: ignore[union-attr]
    assert accepted == SERVICES
    runner = CliRunner()
    for service, port in PORTS.items():
        result = runner.invoke(app, [service, "--help"])
        assert result.exit_code == 0, result.output
        assert f"HTTP :{port}" in result.output  # the service itself, on the port probed
    assert runner.invoke(app, ["no-such-service", "--help"]).exit_code != 0
    for service in ("aggregator", "alerts", "response"):  # the migration job's commands
        assert runner.invoke(app, [service, "migrate", "--help"]).exit_code == 0


def test_runs_zhibao_service_as_pid_1_unprivileged() -> None:
    """CMD execs `zhibao $SERVICE`; USER is not root; the base image is python:3.11-slim."""
    pairs = instructions()
    [cmd] = [rest for kind, rest in pairs if kind == "CMD"]
    assert cmd == '["sh", "-c", "exec zhibao \\"$ZHIBAO_SERVICE\\""]'
    env = " ".join(rest for kind, rest in pairs if kind == "ENV")
    assert "ZHIBAO_SERVICE=${SERVICE}" in env and "ZHIBAO_HOST=0.0.0.0" in env
    [user] = [rest for kind, rest in pairs if kind == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in pairs
    [health] = [rest for kind, rest in pairs if kind == "HEALTHCHECK"]
    assert "/healthz" in health
    for service, port in PORTS.items():
        assert f"'{service}': '{port}'" in health


def test_installs_the_locked_workspace_with_uv_from_pypi() -> None:
    """uv comes from pip (PyPI), pinned; sync is --locked without dev dependencies."""
    runs = [rest for kind, rest in instructions() if kind == "RUN"]
    assert any('pip install --no-cache-dir "uv==${UV_VERSION}"' in run for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs and all("--locked" in run and "--no-dev" in run for run in syncs)


def test_copies_every_workspace_member() -> None:
    """Every uv workspace member's manifest and sources are copied, and every copied path exists."""
    pairs = instructions()
    copies = [rest.split() for kind, rest in pairs if kind == "COPY" and "--from" not in rest]
    sources = {src.rstrip("/") for args in copies for src in args[:-1]}
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
    workspace = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members = {
        str(path.relative_to(REPO))
        for pattern in workspace["members"]
        for path in REPO.glob(pattern)
        if (path / "pyproject.toml").is_file()
    }
    for member in members:
        assert f"{member}/pyproject.toml" in sources, f"{member}'s manifest is not copied"
        assert any(
            member == s or member.startswith(f"{s}/")
            for s in sources - {f"{m}/pyproject.toml" for m in members}
        ), f"{member}'s sources are not copied"


def test_the_build_context_keeps_secrets_and_local_state_out() -> None:
    """Dockerfile.dockerignore starts from nothing and excludes keys and databases."""
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("**")] == "**"
    for pattern in ("**/*.pem", "**/*.key", "**/*.db"):
        assert pattern in ignore
