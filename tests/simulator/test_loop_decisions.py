"""The response loop's decisions: seeded, in the configured shares, in the right order, and
without changing the reporting traffic."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from zhibao_client.simulator import Simulation, SimulationConfig
from zhibao_client.simulator.loop import (
    COMPANION_KIND,
    DeclareLevel,
    IssueTasks,
    LoopStep,
    ReportResult,
    decide,
)
from zhibao_shared.events import REPORTED_EVENT

# One district and its one outbreak (the whole city's two loops: the last test).
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
)
LATER = datetime(2027, 1, 1).astimezone()


def steps(config: SimulationConfig = CONFIG) -> tuple[list[LoopStep], Simulation]:
    simulation = Simulation(config)
    found = [s for s in simulation.timeline() if not isinstance(s, dict)]
    return found, simulation


def test_decisions_follow_the_configured_shares_and_the_seed() -> None:
    config = replace(CONFIG, late_task_share=0.2, unreachable_share=0.1, transferred_share=0.05)
    rng = random.Random(11)
    fates = [decide(rng, config, 24) for _ in range(20_000)]
    again = random.Random(11)
    assert fates == [decide(again, config, 24) for _ in range(20_000)]
    outcomes = Counter(f.outcome for f in fates)
    share = {k: n / len(fates) for k, n in outcomes.items()}
    assert abs(share[None] - 0.02) < 0.005 and abs(share["unreachable"] - 0.1) < 0.01
    assert abs(share["transferred"] - 0.05) < 0.01
    done = [f for f in fates if f.outcome == "done"]
    assert abs(sum(f.late for f in done) / len(done) - 0.2) < 0.01
    assert all((f.hours > 24) == f.late for f in done), "late means after the deadline"
    assert all(f.method == "visit" for f in done), "a companion is closed by a visit only"
    assert {f.method for f in fates if f.outcome in ("unreachable", "transferred")} == {"phone"}


def test_the_loop_declares_pushes_tasks_down_and_lifts_in_time_order() -> None:
    found, simulation = steps()
    declarations = [s for s in found if isinstance(s, DeclareLevel)]
    assert [d.level for d in declarations] == ["red", "none"]
    red, lifted = declarations
    assert red.unit == lifted.unit == CONFIG.outbreak_community and red.compounds
    assert (lifted.when.date() - red.when.date()).days > CONFIG.quiet_days_to_lift
    [push] = [s for s in found if isinstance(s, IssueTasks)]
    assert red.when < push.when < lifted.when
    assert len(push.tasks) == 170 and {t.kind for t in push.tasks} == {COMPANION_KIND}
    per_unit = Counter(t.unit for t in push.tasks)
    assert len(per_unit) > 10 and per_unit.most_common(1)[0][0] == CONFIG.outbreak_community
    # the command centre's tasks' results (needs' results: tests/simulator/test_care.py)
    results = [s for s in found if isinstance(s, ReportResult) and s.task is None]
    issued_at = {t.key: push.when for t in push.tasks}
    assert all(r.when > issued_at.get(r.key, red.when) for r in results)
    assert len({r.key for r in results}) == len(results), "one result per task"
    for result in results:
        REPORTED_EVENT.validate_python(result.event("0" * 32))
    truth = simulation.truth.task_figures(LATER, COMPANION_KIND)
    assert truth.issued == 170 and truth.done + truth.unreachable + truth.open == 170
    assert truth.transferred > 0 and truth.done_late > 0 and truth.overdue == truth.open


def test_the_same_seed_gives_the_same_loop_and_the_traffic_is_unchanged_by_it() -> None:
    first, _ = steps()
    again, _ = steps()
    assert first == again
    other, _ = steps(replace(CONFIG, seed=4))
    assert first != other
    with_loop = list(Simulation(CONFIG).events())
    without = list(Simulation(replace(CONFIG, loop=False)).events())
    assert with_loop == without


def test_lifting_cancels_what_the_level_left_open_and_results_after_until_are_not_sent() -> None:
    _, simulation = steps()
    declared = [t for t in simulation.truth.tasks.values() if t.declared]
    assert {t.state for t in declared} == {"done", "cancelled"}
    first = CONFIG.first_day
    noon = datetime.combine(first + timedelta(days=CONFIG.companion_day), time(12), CONFIG.zone)
    cut = replace(CONFIG, until=noon)
    found, partial = steps(cut)
    assert [s.level for s in found if isinstance(s, DeclareLevel)] == ["red"]
    assert all(s.when <= cut.until for s in found if cut.until is not None)
    figures = partial.truth.task_figures(LATER, COMPANION_KIND)
    assert figures.open > figures.done, "most companions were still to be verified at noon"


def test_the_whole_city_runs_a_loop_per_outbreak_each_closing_only_its_own_tasks() -> None:
    city = replace(CONFIG, area="6401", second_outbreak_community="640104006003", days=31)
    found, simulation = steps(city)
    (first, _), (second, _) = city.outbreak_sites
    declarations = [(s.unit, s.level) for s in found if isinstance(s, DeclareLevel)]
    assert declarations == [(first, "red"), (second, "red"), (first, "none"), (second, "none")]
    points = [(unit, action) for _at, unit, _compound, action in simulation.truth.points]
    assert sorted(points) == sorted((u, a) for u in (first, second) for a in ("declared", "lifted"))
    first_push, second_push = [s for s in found if isinstance(s, IssueTasks)]
    assert (second_push.when - first_push.when).days == city.second_outbreak_after
    keys = [t.key for t in first_push.tasks + second_push.tasks]
    assert len(set(keys)) == len(keys), "the two loops' tasks are told apart"
    for push, site in ((first_push, first), (second_push, second)):
        assert Counter(t.unit for t in push.tasks).most_common(1)[0][0] == site
        assert len({t.unit[:6] for t in push.tasks}) == 6, "pushed down across the city"
    declared = [t for t in simulation.truth.tasks.values() if t.declared]
    assert {t.unit for t in declared} == {first, second}
    for site in (first, second):
        assert {t.state for t in declared if t.unit == site} == {"done", "cancelled"}
    # the first level lifted before the second: the second's tasks were still open then
    early = replace(
        city, until=datetime.combine(first_push.when.date() + timedelta(16), time(12), city.zone)
    )
    _, partial = steps(early)
    states: dict[str, set[str]] = {first: set(), second: set()}
    for task in partial.truth.tasks.values():
        if task.declared:
            states[task.unit].add(task.state)
    assert "cancelled" in states[first] and "cancelled" not in states[second]
