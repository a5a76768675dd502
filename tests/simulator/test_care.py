"""Residents who need help in the simulation: every community's key-person register and
the key persons' needs, most in the outbreak's restricted community, met through task
results (some late, a few not within the run); and, against the real system, the
rollups' register counts and open and overdue needs per community and the response
service's need tasks are what the simulator's truth says.

The last test runs nats-server, intake, the response service and the aggregator as
processes, as ``zhibao up`` runs them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.simulator.system import running
from zhibao_cli.stack import Stack
from zhibao_client.client import ZhibaoClient
from zhibao_client.simulator import CommandCentre, Simulation, SimulationConfig, run
from zhibao_client.simulator.care import NEED_LIMIT_HOURS
from zhibao_client.simulator.loop import ReportResult
from zhibao_response.domain.needs import DEFAULT_NEED_LIMITS, parse_need_limits
from zhibao_shared.care_events import KeyPersonCategory, need_task_id
from zhibao_shared.events import REPORTED_EVENT, event_identity
from zhibao_shared.places import load_places
from zhibao_shared.tokens import Role

# The outbreak's street (10 communities, 143,000 residents), its last eight days up to now:
# the outbreak on day 1, its community restricted from day 3 to the end. A fifth of the
# needs are not met within the run.
STREET, OUTBREAK = "640106001", "640106001002"
CONFIG = SimulationConfig(
    seed=4,
    days=8,
    scale=0.0005,
    area=STREET,
    second_outbreak_community=None,
    outbreak=True,
    outbreak_day=1,
    loop=True,
    key_person_scale=0.003,
    unmet_need_share=0.2,  # more needs still open (and overdue) at the end
    until=datetime.now().astimezone(),
)


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulation, list[dict[str, Any] | Any]]:
    simulation = Simulation(CONFIG)
    return simulation, list(simulation.timeline())


def of_type(items: list[Any], kind: str) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict) and i["type"] == kind]


def test_every_community_registers_a_share_of_its_residents_in_the_contract_s_groups(
    simulated: tuple[Simulation, list[Any]],
) -> None:
    simulation, items = simulated
    registrations = of_type(items, "zhibao.keyperson.v1")
    for event in registrations:
        REPORTED_EVENT.validate_python(event)
    assert {e["data"]["category"] for e in registrations} == set(KeyPersonCategory)
    first_day = [e for e in registrations if e["time"][:10] == CONFIG.first_day.isoformat()]
    for community in simulation.communities:
        persons = {
            e["data"]["person"]["id_number"] for e in first_day if e["subject"] == community.code
        }
        expected = community.population * CONFIG.key_person_scale
        assert 0.8 * expected <= len(persons) <= expected + 1, community.code
    actions = Counter(e["data"]["action"] for e in registrations)
    assert 0 < actions["remove"] < 0.1 * actions["register"]
    assert len(first_day) < actions["register"], "some join the register on a later day"
    # the truth is the latest action per community, person and group
    replayed = {
        (e["subject"], e["data"]["person"]["id_number"], e["data"]["category"]): (
            e["data"]["action"] == "register"
        )
        for e in registrations
    }
    assert replayed == simulation.truth.register
    # registered where they live: a registered building of their community (by id or labels)
    places = load_places()
    for event in registrations:
        data = event["data"]
        if data["action"] == "register":
            found = places.locate(
                event["subject"], data.get("place"), data.get("compound"), data.get("building")
            )
            assert found.building is not None and found.building[:12] == event["subject"]


def test_needs_come_most_from_the_restricted_community_and_results_meet_them(
    simulated: tuple[Simulation, list[Any]],
) -> None:
    simulation, items = simulated
    truth = simulation.truth
    needs = of_type(items, "zhibao.need.v1")
    for event in needs:
        REPORTED_EVENT.validate_python(event)
    tasks = {need_task_id(event_identity(e["subject"], e["source"], e["id"])) for e in needs}
    assert tasks == set(truth.needs), "the truth knows each need by its task's id"
    persons = Counter(community for community, _p in {k[:2] for k in truth.register})
    raised = Counter(n.community for n in truth.needs.values())
    outbreak_rate = raised[OUTBREAK] / persons[OUTBREAK]
    others = sum(raised.values()) - raised[OUTBREAK]
    assert outbreak_rate > 4 * others / (sum(persons.values()) - persons[OUTBREAK])
    (sealed,) = {compound for _at, _unit, compound, _action in truth.points}
    assert sealed.startswith(f"{OUTBREAK}-C"), "the epidemic point is a registered compound"
    in_sealed = [e for e in needs if e["data"].get("place", "").startswith(sealed)]
    assert in_sealed, "the sealed compound's key persons need help"
    kinds = Counter((n.category, n.urgency) for n in truth.needs.values())
    assert kinds["medical", "urgent"] > 0 and kinds["food", "normal"] > 0
    # one result per need met, after it was raised; some late, some still open
    results = [i for i in items if isinstance(i, ReportResult) and i.task is not None]
    assert len({r.task for r in results}) == len(results)
    assert all(r.when > truth.needs[r.key].raised for r in results)
    figures = truth.need_figures(CONFIG.until or datetime.now().astimezone())
    assert figures.done == len(results) and figures.raised == len(needs)
    assert 0 < figures.done_late < figures.done / 3 and figures.open > 0


def test_the_need_limits_are_the_response_service_s_defaults() -> None:
    assert parse_need_limits(DEFAULT_NEED_LIMITS).hours == NEED_LIMIT_HOURS


def test_without_the_loop_the_needs_are_raised_alike_and_none_is_met() -> None:
    without = Simulation(replace(CONFIG, loop=False))
    with_loop = Simulation(CONFIG)
    assert list(without.events()) == list(with_loop.events())
    assert set(without.truth.needs) == set(with_loop.truth.needs)
    assert all(n.open for n in without.truth.needs.values())


@dataclass
class System:
    stack: Stack
    tokens: dict[str, str]
    root: Path

    def get(self, service: str, path: str, token: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{self.stack.url(service)}{path}",
            params=params,
            headers={"authorization": f"Bearer {self.tokens[token]}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("sim-care")
    tokens = {
        "reporter": (["6401"], Role.REPORT),
        "centre": (["6401"], Role.OPERATE),
        "community": ([OUTBREAK], Role.READ),
    }
    with running(root, ("intake", "response", "aggregator"), tokens) as (stack, made):
        yield System(stack, made, root)


def seen(system: System) -> dict[str, Any]:
    """Per community of the street: the rollup's register counts and needs figures."""
    rows = system.get("aggregator", f"/v1/units/{STREET}/children", "centre")["children"]
    return {
        row["code"]: (
            row["figures"]["key_persons"],
            row["figures"]["needs_open"],
            row["figures"]["needs_overdue"],
        )
        for row in rows
    }


def wanted(simulation: Simulation) -> dict[str, Any]:
    truth, now = simulation.truth, datetime.now().astimezone()
    out = {}
    for community in simulation.communities:
        figures = truth.need_figures(now, community.code)
        out[community.code] = (truth.key_persons(community.code), figures.open, figures.overdue)
    return out


def test_the_rollups_and_the_need_tasks_are_what_the_truth_says(system: System) -> None:
    simulation = Simulation(CONFIG)
    centre = CommandCentre(system.stack.url("response"), system.tokens["centre"], simulation.truth)
    spool = system.root / "care.spool"
    with ZhibaoClient(system.stack.url("intake"), system.tokens["reporter"], spool) as client:
        progress = run(simulation.timeline(), client, centre=centre)
    centre.close()
    assert not progress.rejected, [r.describe() for r in progress.rejected[:5]]
    assert progress.spooled == 0
    truth = simulation.truth
    assert truth.need_figures(datetime.now().astimezone()).open > 0

    found: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = seen(system)
        if found == wanted(simulation):
            break
        time.sleep(0.5)
    assert found == wanted(simulation)
    assert sum(open_ for _k, open_, _o in found.values()) > 0
    assert sum(overdue for *_f, overdue in found.values()) > 0

    tasks = system.get("response", "/v1/tasks", "centre", unit="640106", limit=5000)["tasks"]
    needs = {t["id"]: t for t in tasks if t["kind"].startswith("need_")}
    assert set(needs) == set(truth.needs)
    for task, need in truth.needs.items():
        state = "issued" if need.open else "done"
        assert (needs[task]["state"], needs[task]["unit"]) == (state, need.community), need
        assert needs[task]["kind"] == f"need_{need.category}"

    # the community's own register: every person placed in a registered building (labels
    # resolved too), with the needs still open
    register = system.get("aggregator", f"/v1/units/{OUTBREAK}/key-persons", "community")
    rows = register["key_persons"]
    assert register["counts"] == truth.key_persons(OUTBREAK)
    assert all(row["building_id"] for row in rows)
    assert any(row["building"] for row in rows), "some were registered by their labels"
    open_needs = {row["pid"]: row["open_needs"] for row in rows}
    registered = truth.registered(OUTBREAK)
    expected = [n for n in truth.needs.values() if n.open and n.person in registered]
    assert sum(open_needs.values()) == len([n for n in expected if n.community == OUTBREAK])
