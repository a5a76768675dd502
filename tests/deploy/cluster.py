"""A 3-node NATS JetStream cluster on loopback, from the shipped deploy/nats configs.

Each node runs ``deploy/nats/nats-N.conf`` as shipped except for addresses and paths
(see :func:`tests.deploy.support.render_node_config`): TLS for clients, mutually
authenticated TLS routes, the accounts and permissions of accounts.conf.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.support import NodePorts, node_ports, render_node_config, server_env
from zhibao_shared.natsserver import nats_server_binary, wait_for_port


class ClusterError(RuntimeError):
    """The cluster did not start or form in time."""


class PortTaken(ClusterError):
    """A node could not bind a port: another process took it after it was picked."""


#: Port sets tried before a start gives up (free ports are picked, then bound later).
START_ATTEMPTS = 3

#: What nats-server logs once it bound its route port, the last one it binds.
ROUTES_LISTENING = b"Listening for route connections on"


@dataclass
class LoopbackCluster:
    """Three nats-server processes with routes between them on free loopback ports."""

    workdir: Path
    certs: Path
    ports: list[NodePorts] = field(default_factory=node_ports)
    #: accounts.conf rendered for this cluster's consumers; the shipped file when None.
    accounts: str | None = None
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def config(self, number: int) -> Path:
        """The rendered config of node ``number`` (1-based)."""
        return render_node_config(
            number,
            self.ports,
            self.certs,
            self.workdir / f"jetstream-{number}",
            self.workdir / f"node-{number}",
            accounts=self.accounts,
        )

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every node and wait until each one sees both peers and JetStream is up.

        A port taken by another process between picking and binding it starts the
        whole cluster again on new ports (each node's config names the others')."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                for number in (1, 2, 3):
                    self.start_node(number)
                break
            except PortTaken:
                if attempt == START_ATTEMPTS:
                    raise
                self.ports = node_ports()
                for number in (1, 2, 3):
                    shutil.rmtree(self.workdir / f"jetstream-{number}", ignore_errors=True)
        self.wait_formed(timeout_s)

    def start_node(self, number: int) -> None:
        """Start one node (again) and wait until it listens for clients."""
        path = self.workdir / f"nats-{number}.log"
        logged = path.stat().st_size if path.exists() else 0
        with path.open("ab") as log:
            self.processes[number] = subprocess.Popen(
                [nats_server_binary(), "--config", str(self.config(number))],
                env=server_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not self._listening(number, path, logged, 15):
            self.stop()
            said = path.read_bytes()[logged:]
            if b"address already in use" in said:
                raise PortTaken(f"node {number}: {said.decode(errors='replace')[-300:]}")
            raise ClusterError(f"node {number} did not listen; see {self.workdir}")

    def _listening(self, number: int, log: Path, logged: int, timeout_s: float) -> bool:
        """Until node ``number`` listens for routes; False once it exited or timed out.

        The route port is bound last, after the server already answers clients, and a
        taken one ends the process then: a client port that answers is not enough."""
        deadline = time.monotonic() + timeout_s
        while self.processes[number].poll() is None and time.monotonic() < deadline:
            if ROUTES_LISTENING in log.read_bytes()[logged:]:
                return wait_for_port("127.0.0.1", self.ports[number - 1].client, 0.2)
            time.sleep(0.05)
        return False

    def monitor(self, number: int, path: str) -> dict[str, object]:
        """A JSON document from one node's monitoring port."""
        url = f"http://127.0.0.1:{self.ports[number - 1].http}{path}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.load(response))

    def wait_formed(self, timeout_s: float) -> None:
        """Until every running node routes to the others, is healthy, knows a JS leader."""
        running = [n for n, p in self.processes.items() if p.poll() is None]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                formed = all(
                    self._peers(n) >= len(running) - 1
                    and self.monitor(n, "/healthz").get("status") == "ok"
                    and self._meta_leader(n)
                    for n in running
                )
            except OSError:
                formed = False
            if formed:
                return
            time.sleep(0.2)
        raise ClusterError(f"the cluster did not form in {timeout_s} s; logs in {self.workdir}")

    def _meta_leader(self, number: int) -> str:
        """The JetStream metadata leader a node knows of ('' while there is none)."""
        meta = self.monitor(number, "/jsz").get("meta_cluster") or {}
        assert isinstance(meta, dict)
        return str(meta.get("leader") or "")

    def _peers(self, number: int) -> int:
        """Distinct peer servers a node has routes to."""
        routes = self.monitor(number, "/routez").get("routes") or []
        assert isinstance(routes, list)
        return len({route.get("remote_name") or route.get("remote_id") for route in routes})

    def kill(self, number: int) -> None:
        """SIGKILL one node (a crash, not a shutdown)."""
        process = self.processes.pop(number)
        process.kill()
        process.wait(10)

    def stop(self) -> None:
        """Stop every node still running."""
        for number in list(self.processes):
            process = self.processes.pop(number)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def client_urls(self, user: str, password: str) -> list[str]:
        """TLS client URLs of every node, with a user's credentials in each."""
        return [f"tls://{user}:{password}@127.0.0.1:{p.client}" for p in self.ports]
