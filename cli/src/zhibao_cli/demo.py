"""``zhibao up --demo``: the simulator feeds the running system so the page comes alive.

Two weeks of the whole sample city's reporting (every one of Yinchuan's 323
communities and villages, ≈ 2,000 events a simulated day), with a building
outbreak in Jinfeng and a second one in Xingqing three days later, are posted
through the real intake API with a real report token, paced at a few seconds per
simulated day: the dashboard fills within seconds and the alert rules fire within
a minute. The response loop runs too, for each outbreak, with the page's operate
token as the command centre's: a red level and an epidemic point for the outbreak
community (its playbook's tasks), a day of companion-verification tasks pushed
down to the communities and their results reported back through intake, some
still open (and some overdue) at the end for the user to follow. The demo's
tokens are revoked when it stops.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from zhibao_client.cli import ProgressLine
from zhibao_client.client import RequestRefused, ZhibaoClient
from zhibao_client.simulator import CommandCentre, Simulation, SimulationConfig, run
from zhibao_client.simulator.config import DEFAULT_SCALE
from zhibao_shared.tokens import Role, TokenStore

DEMO_DAYS = 14
DEMO_SECONDS_PER_DAY = 3.0
#: ≈ 1,600 screenings a simulated day over the city: at 3 s a day, ≈ 700 events/s.
DEMO_SCALE = DEFAULT_SCALE
#: Whom the demo page's acknowledgements are recorded as.
DEMO_PERSON = "演示值班员 (demo)"


@dataclass
class Demo:
    """The simulator running in a background thread against a started stack."""

    intake_url: str
    data_dir: Path
    response_url: str = ""  # the command centre's side of the loop (none without it)
    seconds_per_day: float = DEMO_SECONDS_PER_DAY
    seed: int = 1
    #: The simulated city: the page opens on it, the simulator reports for it.
    scope: str = SimulationConfig().area
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
                scopes=[self.scope],
                role=Role.OPERATE,
                name="demo-dashboard",
                # acknowledging takes a personal token: the demo's is the visitor's
                person=DEMO_PERSON,
            )
            self._token_ids = [reporter.id, operator.id]
        finally:
            store.close()

    def start(self) -> None:
        """Start posting in the background."""
        self._thread = threading.Thread(target=self._run, name="zhibao-demo", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float) -> bool:
        """Wait until the simulation has been posted; False if it still runs after
        ``timeout_s`` seconds."""
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        return self._thread is not None and not self._thread.is_alive()

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
            loop=bool(self.response_url),
        )
        spool = self.data_dir / "demo.spool"
        simulation = Simulation(config)
        centre = CommandCentre(self.response_url, self.dashboard_token, simulation.truth)
        try:
            with ZhibaoClient(self.intake_url, self.report_token, spool, batch_size=200) as client:
                progress = run(
                    simulation.timeline(),
                    client,
                    seconds_per_day=self.seconds_per_day,
                    on_progress=ProgressLine(),
                    drain_wait_s=60.0,  # the results come last: let them reach intake
                    stop=self._stop,
                    centre=centre,
                )
        except RequestRefused as refused:
            print(f"\ndemo: a service refused the simulator: {refused}", file=sys.stderr)
            return
        except httpx.HTTPError as exc:
            print(f"\ndemo: the response service is unreachable: {exc}", file=sys.stderr)
            return
        finally:
            centre.close()
        if not self._stop.is_set():
            print(f"\ndemo: done. {progress.line()}", file=sys.stderr, flush=True)


def banner_lines(demo: Demo) -> list[str]:
    """What the banner tells a new user about the demo, the response loop included."""
    lines = [
        "",
        "Demo: two simulated weeks of the whole city, with an outbreak in Jinfeng and a",
        "second one in another district days later, are being posted through intake;",
        "open the command centre link above (it signs you in) and watch alerts fire.",
    ]
    if not demo.response_url:
        return lines
    url = demo.response_url
    sites = [code for code, _day in SimulationConfig(outbreak=True).outbreak_sites]
    return [
        *lines,
        "The response loop: a red level is declared for each outbreak community",
        *(f"  ({url}/v1/levels/{code})" for code in sites),
        "  and a day's companion-verification tasks are pushed down to the communities",
        f"  (Jinfeng's: {url}/v1/tasks?unit={sites[0][:6]}); their results come back",
        "  through intake as zhibao.task_result.v1 events. Some stay open: follow one from",
        "  the command centre to its community (the community worker page above, with the",
        "  community's own tokens) and back: README, 'Follow a task in the demo'.",
    ]
