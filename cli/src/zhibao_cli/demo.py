"""``zhibao up --demo``: the simulator feeds the running system so the page comes alive.

Two weeks of the sample district's reporting, with a building outbreak, are
posted through the real intake API with a real report token, paced at a few
seconds per simulated day: the dashboard fills within seconds and the alert
rules fire within a minute. The demo's tokens are revoked when it stops.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from zhibao_client.cli import ProgressLine
from zhibao_client.client import RequestRefused, ZhibaoClient
from zhibao_client.simulator import Simulation, SimulationConfig, run
from zhibao_shared.tokens import Role, TokenStore

DEMO_DAYS = 14
DEMO_SECONDS_PER_DAY = 3.0
DEMO_SCALE = 0.005


@dataclass
class Demo:
    """The simulator running in a background thread against a started stack."""

    intake_url: str
    data_dir: Path
    seconds_per_day: float = DEMO_SECONDS_PER_DAY
    seed: int = 1
    #: The simulated district: the page opens on it, the simulator reports for it.
    scope: str = SimulationConfig().district
    report_token: str = ""
    dashboard_token: str = ""
    _token_ids: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def issue_tokens(self) -> None:
        """A report token for the simulator and an operate token for the page."""
        store = TokenStore.in_data_dir(self.data_dir)
        try:
            reporter, self.report_token = store.create(
                scopes=[self.scope], role=Role.REPORT, name="demo-simulator"
            )
            operator, self.dashboard_token = store.create(
                scopes=[self.scope], role=Role.OPERATE, name="demo-dashboard"
            )
            self._token_ids = [reporter.id, operator.id]
        finally:
            store.close()

    def start(self) -> None:
        """Start posting in the background."""
        self._thread = threading.Thread(target=self._run, name="zhibao-demo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop posting (unsent events stay in the demo spool) and revoke the tokens."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        store = TokenStore.in_data_dir(self.data_dir)
        try:
            for token_id in self._token_ids:
                store.revoke(token_id)
        finally:
            store.close()

    def _run(self) -> None:
        config = SimulationConfig(
            seed=self.seed,
            days=DEMO_DAYS,
            scale=DEMO_SCALE,
            outbreak=True,
            until=datetime.now().astimezone(),
        )
        spool = self.data_dir / "demo.spool"
        try:
            with ZhibaoClient(self.intake_url, self.report_token, spool, batch_size=200) as client:
                progress = run(
                    Simulation(config).events(),
                    client,
                    seconds_per_day=self.seconds_per_day,
                    on_progress=ProgressLine(),
                    drain_wait_s=10.0,
                    stop=self._stop,
                )
        except RequestRefused as refused:
            print(f"\ndemo: intake refused the simulator: {refused}", file=sys.stderr)
            return
        if not self._stop.is_set():
            print(f"\ndemo: done. {progress.line()}", file=sys.stderr, flush=True)
