"""The simulator's response loop against the real system: the command centre declares a
level, pushes companion tasks down, communities report results through intake, the level
is lifted; every task ends in the response service as the simulator's truth says.

nats-server (with one bus user per service), intake and the response service run as
processes, as ``zhibao up`` runs them.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.simulator.system import running
from zhibao_cli.demo import Demo, banner_lines
from zhibao_cli.stack import Stack
from zhibao_client.cli import app
from zhibao_client.client import ZhibaoClient
from zhibao_client.simulator import CommandCentre, Simulation, SimulationConfig, deliver, run
from zhibao_client.simulator.truth import GroundTruth
from zhibao_shared.tokens import Role

pytestmark = pytest.mark.integration

# Jinfeng alone, 22 days from 1 March, the outbreak on day 2: its cases end by day 6, and
# seed 3 has no later case in the community, so the level is lifted on day 21 (14 quiet
# days). The whole city's two loops: the simulate command's and the demo's tests.
CONFIG = SimulationConfig(
    seed=3,
    days=22,
    start=date(2026, 3, 1),
    scale=0.0003,
    area="640106",
    second_outbreak_community=None,
    outbreak=True,
    outbreak_day=2,
    loop=True,
    until=datetime.now().astimezone(),
)
CITY = "6401"
DISTRICTS = ("640104", "640105", "640106", "640121", "640122", "640181")


class System:
    """The running processes and the two tokens (the city's reporter, its command centre)."""

    def __init__(self, stack: Stack, report: str, operate: str, root: Path) -> None:
        self.stack, self.report, self.operate, self.root = stack, report, operate, root

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task of the city, by id (listed by district: the service lists a district
        and the units below it)."""
        found: dict[str, dict[str, Any]] = {}
        for district in DISTRICTS:
            answer = httpx.get(
                f"{self.stack.url('response')}/v1/tasks",
                params={"unit": district, "limit": 5000},
                headers={"authorization": f"Bearer {self.operate}"},
            )
            assert answer.status_code == 200, answer.text
            found |= {t["id"]: t for t in answer.json()["tasks"]}
        return found

    def points(self, unit: str) -> list[dict[str, Any]]:
        """The epidemic points of a unit."""
        answer = httpx.get(
            f"{self.stack.url('response')}/v1/points",
            params={"unit": unit},
            headers={"authorization": f"Bearer {self.operate}"},
        )
        assert answer.status_code == 200, answer.text
        points: list[dict[str, Any]] = answer.json()["points"]
        return points

    def level(self, unit: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.stack.url('response')}/v1/levels/{unit}",
            headers={"authorization": f"Bearer {self.operate}"},
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("sim-loop")
    tokens = {"sim-reporter": ([CITY], Role.REPORT), "sim-centre": ([CITY], Role.OPERATE)}
    with running(root, ("intake", "response"), tokens) as (stack, made):
        yield System(stack, made["sim-reporter"], made["sim-centre"], root)


def expected_state(truth: GroundTruth, key: str) -> tuple[str, str, bool]:
    task = truth.tasks[key]
    return task.state, task.unit, task.overdue(datetime.now().astimezone())


def expected_need(truth: GroundTruth, task: str) -> tuple[str, str, bool]:
    need = truth.needs[task]
    state = "issued" if need.open else "done"
    return state, need.community, need.overdue(datetime.now().astimezone())


def test_every_task_ends_in_the_response_service_as_the_truth_says(system: System) -> None:
    simulation = Simulation(CONFIG)
    centre = CommandCentre(system.stack.url("response"), system.operate, simulation.truth)
    spool = system.root / "loop.spool"
    items = deliver(simulation.timeline(), seed=3, duplicate_rate=0.05, reorder_window=20)
    with ZhibaoClient(system.stack.url("intake"), system.report, spool) as client:
        progress = run(items, client, centre=centre)
    centre.close()
    assert not progress.rejected, [r.describe() for r in progress.rejected[:5]]
    assert progress.spooled == 0
    truth = simulation.truth
    assert [level for _at, _unit, level in truth.levels] == ["red", "none"], "declared, lifted"
    figures = truth.task_figures(datetime.now().astimezone(), "verify_companion")
    assert figures.issued == progress.tasks_issued
    assert figures.done > figures.done_late > 0 and figures.unreachable > 0
    assert figures.transferred > 0 and figures.overdue > 0
    assert {t.state for t in truth.tasks.values() if t.declared} <= {"done", "cancelled"}
    assert "cancelled" in {t.state for t in truth.tasks.values() if t.declared}

    wanted = {centre.ids[key]: expected_state(truth, key) for key in truth.tasks}
    # the key persons' needs: their tasks (ids derived from the needs), met or still open
    assert truth.needs and {n.task for n in truth.needs.values()}.isdisjoint(wanted)
    wanted |= {task: expected_need(truth, task) for task in truth.needs}
    deadline = time.monotonic() + 120
    seen: dict[str, tuple[str, str, bool]] = {}
    while time.monotonic() < deadline:
        seen = {i: (t["state"], t["unit"], t["overdue"]) for i, t in system.tasks().items()}
        if seen == wanted:
            break
        time.sleep(0.5)
    assert seen == wanted
    level = system.level(CONFIG.outbreak_community)
    assert level["level"] == "none"
    assert [d["level"] for d in level["history"]] == ["none", "red"]
    # the epidemic point at the outbreak compound: declared with the level, lifted on schedule
    assert [action for *_, action in truth.points] == ["declared", "lifted"]
    (_at, _unit, compound, _), (lifted_at, *_rest) = truth.points
    last_case = max(d for d in simulation.case_days())
    assert (lifted_at.date() - simulation.day(last_case)).days == CONFIG.quiet_days_to_lift
    [point] = system.points(CONFIG.outbreak_community)
    assert (point["compound"], point["lifted"]) == (compound, True)


def test_simulate_runs_the_loop_when_given_a_command_centre_token(
    system: System, tmp_path: Path
) -> None:
    # the whole city: the second outbreak (day 4) is declared on day 6, its tasks on day 7
    args = ["simulate", "--days", "8", "--start", "2026-05-01", "--scale", "0.0002"]
    args += ["--outbreak", "--outbreak-day", "1", "--seed", "8"]
    args += ["--url", system.stack.url("intake"), "--token", system.report]
    args += ["--response-url", system.stack.url("response"), "--operate-token", system.operate]
    result = CliRunner().invoke(app, [*args, "--spool", str(tmp_path / "sim.spool")])
    assert result.exit_code == 0, result.output
    found = re.search(r"tasks: issued ([\d,]+), done ([\d,]+)", result.output)
    assert found, result.output
    issued = int(found.group(1).replace(",", ""))
    assert issued > 100 and int(found.group(2).replace(",", "")) > 0
    assert "levels declared: red" in result.output
    declared = re.findall(r"levels declared: red \(.*\) for (\d{12})", result.output)
    assert declared == ["640106001002", "640104006003"], result.output


# the whole city's demo, unpaced: 29k events and two loops' 5k results on a shared 2-core box
@pytest.mark.timeout(600)
def test_the_demo_declares_pushes_tasks_down_and_leaves_some_to_follow(system: System) -> None:
    demo = Demo(
        system.stack.url("intake"),
        system.stack.data_dir,
        system.stack.url("response"),
        seconds_per_day=0,
    )
    demo.issue_tokens()
    lines = "\n".join(banner_lines(demo))
    assert f"{system.stack.url('response')}/v1/levels/640106001002" in lines
    assert f"{system.stack.url('response')}/v1/levels/640104006003" in lines
    demo.start()
    try:
        assert demo.wait(400), "the demo's simulation did not finish"
        for outbreak in ("640106001002", "640104006003"):  # Jinfeng's, then Xingqing's
            level = system.level(outbreak)
            assert level["level"] == "red" and level["declared_by"] == "demo-dashboard"
            # the module's earlier runs declared points here too: the demo's own is still active
            own = [p for p in system.points(outbreak) if p["declared_by"] == "demo-dashboard"]
            assert [p["lifted"] for p in own] == [False]
        states: Counter[str] = Counter()
        deadline = time.monotonic() + 120  # the results reach the service after intake
        while time.monotonic() < deadline:
            states = Counter(
                t["state"]
                for t in system.tasks().values()
                if t["kind"] == "verify_companion" and t["issued_by"] == "demo-dashboard"
            )
            if states["done"] > states.total() / 2:
                break
            time.sleep(0.5)
        assert states.total() > 2000
        assert states["done"] > states.total() / 2 and states["issued"] > 0, states
    finally:
        demo.stop()
