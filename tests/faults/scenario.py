"""One fault-injection run: a simulated district's days posted through the real intake by
the real client while faults are injected, then everything the system shows checked.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from tests.faults import alerts as oracle
from tests.faults.injection import Gate, Injected, inject, schedule
from tests.faults.receiver import PagingReceiver
from tests.faults.rollups import (
    Mismatch,
    compare,
    expected_rollups,
    lost_and_double,
    served_rollups,
)
from tests.faults.system import System, start_system
from zhibao_client import ZhibaoClient
from zhibao_client.simulator import Progress, Simulation, SimulationConfig, deliver, run
from zhibao_client.simulator.truth import GroundTruth

T = TypeVar("T")
ZONE_NAME = "Asia/Shanghai"


@dataclass(frozen=True)
class Scenario:
    """What to simulate, how to deliver it and which faults to inject."""

    name: str
    seed: int
    faults: Counter[str]
    postgres: bool = False
    days: int = 5
    scale: float = 0.015
    duplicate_rate: float = 0.02
    reorder_window: int = 30
    #: Pace: one simulated day in this many seconds, so the faults land during the load.
    seconds_per_day: float = 0.0


@dataclass
class Outcome:
    """Everything observed in one run (the report and the assertions read it)."""

    scenario: Scenario
    generated: int = 0
    delivered: int = 0
    progress: Progress = field(default_factory=Progress)
    stream_messages: int = 0
    stream_events: int = 0
    stream_identities: set[str] = field(default_factory=set)
    injected: Injected = field(default_factory=Injected)
    mismatches: list[Mismatch] = field(default_factory=list)
    compared_figures: int = 0
    immediate_expected: set[str] = field(default_factory=set)
    raised: list[oracle.Alert] = field(default_factory=list)
    outbreak_missing: list[str] = field(default_factory=list)
    raised_twice: dict[str, int] = field(default_factory=dict)
    windowed_twice: dict[str, int] = field(default_factory=dict)
    missing_reports_expected: set[str] = field(default_factory=set)
    missing_reports_open: Counter[str] = field(default_factory=Counter)
    overdue_certain: set[str] = field(default_factory=set)
    overdue_possible: set[str] = field(default_factory=set)
    overdue_open: Counter[str] = field(default_factory=Counter)
    delivered_pages: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    unpaged: list[oracle.Alert] = field(default_factory=list)
    paged_twice: int = 0
    paged_twice_in_effect: int = 0
    webhook_refused: int = 0
    webhook_slowed: int = 0
    backlog: dict[str, tuple[int, int]] = field(default_factory=dict)
    caught_up: bool = False
    undelivered: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def lost_and_double(self) -> tuple[int, int]:
        """Events missing from / counted twice in the community rollups."""
        return lost_and_double(self.mismatches)


def poll(probe: Callable[[], T], done: Callable[[T], bool], timeout_s: float) -> tuple[T, bool]:
    """Poll ``probe`` until ``done`` holds or time is up; the last value and whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if done(value):
            return value, True
        if time.monotonic() > deadline:
            return value, False
        time.sleep(0.5)


def simulate(scenario: Scenario) -> tuple[list[dict[str, Any]], GroundTruth]:
    """The scenario's events (in time order, up to a minute ago) and their ground truth."""
    config = SimulationConfig(
        seed=scenario.seed,
        days=scenario.days,
        scale=scenario.scale,
        # Jinfeng and its one outbreak, as before the simulator's default became the city
        area="640106",
        second_outbreak_community=None,
        outbreak=True,
        # the day before the last: EARS needs days of the community's own data first
        outbreak_day=max(0, scenario.days - 2),
        until=datetime.now(UTC) - timedelta(minutes=1),
        timezone=ZONE_NAME,
    )
    simulation = Simulation(config)
    return list(simulation.events()), simulation.truth


def send(
    system: System, events: list[dict[str, Any]], spool: Path, gate: Gate, scenario: Scenario
) -> tuple[Progress | None, BaseException | None]:
    """Post the events through the client (spooled, retried); never raises."""
    try:
        with ZhibaoClient(
            system.url("intake"),
            system.report_token,
            spool,
            timeout_s=10,
            base_delay_s=0.2,
            max_delay_s=2.0,
            seed=scenario.seed,
        ) as client:
            progress = run(
                events,
                client,
                seconds_per_day=scenario.seconds_per_day,
                batch_size=200,
                on_progress=lambda p: gate.progress(p.sent),
                drain_wait_s=180,
                stop=gate.stopped,
            )
        return progress, None
    except BaseException as exc:  # re-raised by the main thread
        return None, exc
    finally:
        gate.finish()


def run_scenario(scenario: Scenario, root: Path) -> Outcome:
    """Start the system, load it while injecting faults, wait until it settles, observe."""
    started = time.monotonic()
    events, truth = simulate(scenario)
    delivery = list(
        deliver(
            events,
            seed=scenario.seed,
            duplicate_rate=scenario.duplicate_rate,
            reorder_window=scenario.reorder_window,
        )
    )
    outcome = Outcome(scenario, generated=len(events), delivered=len(delivery))
    phase = Phases(outcome.phases, started)
    phase("simulate")
    with PagingReceiver() as receiver:
        system = start_system(root, receiver, use_postgres=scenario.postgres)
        phase("start")
        try:
            _load(system, scenario, delivery, root, outcome)
            phase("load and faults")
            _settle(system, out=outcome)
            phase("catch up")
            _observe(system, events, truth, outcome)
            phase("observe")
        finally:
            system.stop()
            phase("stop")
    outcome.seconds = time.monotonic() - started
    return outcome


@dataclass
class Phases:
    """Wall-clock seconds spent per phase of a run (for the report)."""

    spent: dict[str, float]
    last: float

    def __call__(self, name: str) -> None:
        """The phase ``name`` ends now."""
        now = time.monotonic()
        self.spent[name] = now - self.last
        self.last = now


def _load(
    system: System, scenario: Scenario, delivery: list[dict[str, Any]], root: Path, out: Outcome
) -> None:
    """Send on a helper thread while the main thread injects the faults."""
    gate = Gate()
    result: list[tuple[Progress | None, BaseException | None]] = []
    sender = threading.Thread(
        target=lambda: result.append(send(system, delivery, root / "client.spool", gate, scenario)),
        daemon=True,
    )
    faults = schedule(scenario.faults, len(delivery), scenario.seed)
    began = time.monotonic()
    sender.start()
    try:
        out.injected = inject(system, faults, gate, scenario.seed, began)
    except BaseException:
        gate.abandon()  # the sender stops at its next batch
        raise
    sender.join(timeout=240)
    assert not sender.is_alive(), "the client did not finish sending within 240s"
    progress, error = result[0]
    if error is not None:
        raise AssertionError(f"the client failed: {error!r}") from error
    assert progress is not None
    out.progress = progress


def _settle(system: System, out: Outcome) -> None:
    """Wait until both consumers have applied and acknowledged everything in the stream."""
    out.backlog, out.caught_up = poll(
        system.consumers_idle,
        lambda backlog: all(v == (0, 0) for v in backlog.values()),
        timeout_s=150,
    )


def _observe(
    system: System, events: list[dict[str, Any]], truth: GroundTruth, out: Outcome
) -> None:
    out.stream_messages, out.stream_events, out.stream_identities = system.stream_contents()
    expected = expected_rollups(truth)
    days = sorted({day for _unit, day, _metric in expected})
    served = served_rollups(system.url("aggregator"), system.operate_token, days)
    out.compared_figures = len(served)
    out.mismatches = compare(expected, served)
    _observe_alerts(system, events, truth, out)


def _observe_alerts(
    system: System, events: list[dict[str, Any]], truth: GroundTruth, out: Outcome
) -> None:
    url, token = system.url("alerts"), system.operate_token
    now = datetime.now(UTC)
    report_day = oracle.overdue_report_day(now, ZoneInfo(ZONE_NAME))
    out.missing_reports_expected = oracle.expected_missing_reports(truth, report_day)
    out.overdue_certain, out.overdue_possible = oracle.overdue_checks(events, now)

    def settled(raised: list[oracle.Alert]) -> bool:
        reports = set(oracle.open_units(raised, "missing_daily_report"))
        overdue = set(oracle.open_units(raised, "missed_isolation_check"))
        return reports == out.missing_reports_expected and (
            out.overdue_certain <= overdue <= out.overdue_possible
        )

    out.raised, _ = poll(lambda: oracle.fetch_alerts(url, token), settled, timeout_s=60)
    # time-based alerts are judged once the backlog is applied: they may be the last
    # raised, so their pages are awaited after they appear
    out.undelivered, _ = poll(
        lambda: oracle.pending_notifications(url, token),
        lambda pending: pending == 0,
        timeout_s=120,
    )
    out.immediate_expected = oracle.expected_immediate(truth)
    out.outbreak_missing = oracle.outbreak_misses(truth, out.raised)
    out.raised_twice = oracle.raised_more_than_once(
        out.raised, ("immediate_", "missing_daily_report")
    )
    out.windowed_twice = oracle.raised_more_than_once(out.raised, ("fever_cluster", "ears_"))
    out.missing_reports_open = oracle.open_units(out.raised, "missing_daily_report")
    out.overdue_open = oracle.open_units(out.raised, "missed_isolation_check")
    out.delivered_pages = system.receiver.delivered()
    out.unpaged = oracle.unpaged(out.raised, out.delivered_pages)
    out.paged_twice = oracle.paged_twice(out.raised, out.delivered_pages)
    out.paged_twice_in_effect = oracle.paged_twice(
        out.raised, system.receiver.delivered_in_effect()
    )
    out.webhook_refused = system.receiver.refused()
    out.webhook_slowed = system.receiver.slowed()
