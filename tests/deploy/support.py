"""Helpers for the deployment tests: paths, throwaway certificates, NATS configs on loopback.

The shipped NATS node configs use container paths and ports (``/etc/nats/tls``,
``/data/jetstream``, ``0.0.0.0:4222``, routes to ``nats-N:6222``). To check them
with a real nats-server here, :func:`render_node_config` copies them into a temp
folder changing only those addresses; everything else (accounts, permissions,
TLS settings, cluster settings) is the shipped text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zhibao_shared.natsserver import free_port, nats_server_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NATS_DIR = DEPLOY / "nats"
NODE_CONFIGS = [NATS_DIR / f"nats-{n}.conf" for n in (1, 2, 3)]
MAKE_CERTS = NATS_DIR / "tls" / "make-certs.sh"

#: The users in deploy/nats/accounts.conf and the environment variable holding each password.
NATS_USERS = {
    "intake": "NATS_INTAKE_PASSWORD",
    "aggregator": "NATS_AGGREGATOR_PASSWORD",
    "alerts": "NATS_ALERTS_PASSWORD",
    "response": "NATS_RESPONSE_PASSWORD",
    "dashboard": "NATS_DASHBOARD_PASSWORD",
    "community": "NATS_COMMUNITY_PASSWORD",
    "ops": "NATS_OPS_PASSWORD",
    "sys": "NATS_SYS_PASSWORD",
}


def test_passwords() -> dict[str, str]:
    """Throwaway passwords for every NATS user, as the environment nats-server reads."""
    return {env: f"{user}-pw-0123456789abcdef" for user, env in NATS_USERS.items()}


test_passwords.__test__ = False  # type: ignore[attr-defined]  # not a test


def password(user: str) -> str:
    """The throwaway password of one NATS user."""
    return test_passwords()[NATS_USERS[user]]


def server_env(*, with_passwords: bool = True) -> dict[str, str]:
    """Environment for nats-server: ours without NATS_* passwords, plus the test ones."""
    env = {k: v for k, v in os.environ.items() if k not in NATS_USERS.values()}
    if with_passwords:
        env.update(test_passwords())
    return env


def make_certs(out: Path) -> Path:
    """Run the shipped make-certs.sh into ``out``; returns ``out``."""
    subprocess.run(
        ["bash", str(MAKE_CERTS), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


@dataclass(frozen=True)
class NodePorts:
    """Loopback ports of one rendered node."""

    client: int
    http: int
    route: int


def node_ports(count: int = 3) -> list[NodePorts]:
    """Free loopback ports for ``count`` nodes."""
    return [NodePorts(free_port(), free_port(), free_port()) for _ in range(count)]


def render_node_config(
    number: int,
    ports: list[NodePorts],
    certs: Path,
    store: Path,
    out_dir: Path,
    accounts: str | None = None,
) -> Path:
    """The shipped ``nats-<number>.conf`` with loopback ports, temp paths and certificates.

    accounts.conf is copied beside it unchanged (the include is relative), or
    ``accounts`` written instead (rendered for a partitioned deployment's consumers).
    """
    text = (NATS_DIR / f"nats-{number}.conf").read_text()
    own = ports[number - 1]
    replacements = {
        "/etc/nats/tls/": f"{certs}/",
        "/data/jetstream": str(store),
        "0.0.0.0:4222": f"127.0.0.1:{own.client}",
        "0.0.0.0:8222": f"127.0.0.1:{own.http}",
        "0.0.0.0:6222": f"127.0.0.1:{own.route}",
    }
    for peer, peer_ports in enumerate(ports, start=1):
        replacements[f"nats-route://nats-{peer}:6222"] = (
            f"nats-route://127.0.0.1:{peer_ports.route}"
        )
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"nats-{number}.conf no longer contains {old!r}")
        text = text.replace(old, new)
    out_dir.mkdir(parents=True, exist_ok=True)
    if accounts is None:
        shutil.copy(NATS_DIR / "accounts.conf", out_dir / "accounts.conf")
    else:
        (out_dir / "accounts.conf").write_text(accounts)
    path = out_dir / f"nats-{number}.conf"
    path.write_text(text)
    return path


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``nats-server --config <path> -t`` (parse and validate, do not start)."""
    return subprocess.run(
        [nats_server_binary(), "--config", str(path), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def single_node_config(out_dir: Path, port: int, *, certs: Path | None = None) -> Path:
    """A one-node server using the shipped accounts.conf verbatim (TLS when ``certs``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(NATS_DIR / "accounts.conf", out_dir / "accounts.conf")
    tls = ""
    if certs is not None:
        tls = (
            "tls {\n"
            f"  cert_file: {certs}/server.pem\n"
            f"  key_file: {certs}/server-key.pem\n"
            f"  ca_file: {certs}/ca.pem\n"
            "}\n"
        )
    path = out_dir / "server.conf"
    path.write_text(
        f"server_name: single-{port}\nlisten: 127.0.0.1:{port}\n"
        f"jetstream {{ store_dir: {out_dir / 'jetstream'} }}\n{tls}include accounts.conf\n"
    )
    return path


def user_url(user: str, port: int, *, scheme: str = "nats") -> str:
    """Client URL with a user's credentials."""
    return f"{scheme}://{user}:{password(user)}@127.0.0.1:{port}"


def defined_metrics() -> set[str]:
    """Metric names the services define (string literals ``"zhibao_…"`` in their sources)."""
    import re

    names: set[str] = set()
    for root in (REPO / "services", REPO / "shared" / "src"):
        for source in root.rglob("*.py"):
            names.update(re.findall(r'"(zhibao_[a-z0-9_]+)"', source.read_text()))
    return names


def used_metrics(text: str) -> set[str]:
    """``zhibao_…`` metric names a PromQL text uses (histogram suffixes stripped)."""
    import re

    found = set(re.findall(r"\b(zhibao_[a-z0-9_]+)", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in found}
