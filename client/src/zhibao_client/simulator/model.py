"""A deterministic model of the sample city's reporting traffic.

Per community and simulated day: screenings at gates, building doors and by
self-report in proportion to the population (times ``scale``), a background
fever rate, returnees from risk areas put in home isolation, occasional
suspected cases (most excluded a day or two later, a few confirmed, whose
close contacts go into isolation with daily checks, a few missed), and a daily
report closing the day from every community (a few late, one community that
goes silent). With ``outbreak``, a fever cluster in one building becomes
confirmed cases over several days, in Jinfeng and, a few days later, in a
second district. Residents live in the registered buildings of their community and
events name them by their place ids (a few by their labels). Every community reports
its key-person register, and key persons raise needs (most in an outbreak's
restricted community). Everything comes from seeded random generators (one for the
traffic, one each for the places' form, the register and needs, and the response
loop), consumed in a fixed order: the same config gives the same events.

``Simulation(config).events()`` yields reported events (CloudEvents dicts) in
time order and fills ``simulation.truth`` as it goes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from zhibao_client.simulator.care import KeyPerson, limit_hours, need_fate, need_of, register
from zhibao_client.simulator.config import SimulationConfig, companion_day
from zhibao_client.simulator.loop import (
    DECLARED_DECISIONS,
    LIFTED,
    DeclareLevel,
    DeclarePoint,
    IssueTasks,
    LiftPoint,
    LoopStep,
    ReportResult,
    companion_tasks,
    decide,
    declared_decisions,
    transfer_target,
)
from zhibao_client.simulator.outbreak import Outbreak
from zhibao_client.simulator.people import Community
from zhibao_client.simulator.truth import (
    FEVER_C,
    DayTotals,
    ExpectedAlert,
    ExpectedNeed,
    ExpectedTask,
    GroundTruth,
)
from zhibao_shared.care_events import KeyPersonCategory, need_task_id
from zhibao_shared.events import event_identity
from zhibao_shared.hierarchy import Registry, load_registry
from zhibao_shared.places import Places, load_places

REPORT_DEADLINE = time(9, 0)  # the next day
#: Loop steps sort after the events of the same moment (and never shift their ids).
_STEP_SEQ = 10**12
_NEW_CASES = ("confirmed", "asymptomatic")


@dataclass(frozen=True)
class Fact:
    """What the model decided an event is (the ground truth's view of it)."""

    kind: str  # screening, case, isolation, report, keyperson, need (loop: a loop step)
    community: str
    site: str = ""
    fever: bool = False
    travel: bool = False
    classification: str = ""
    action: str = ""  # isolation: start, check …; keyperson: register, remove
    report_day: date | None = None
    late: bool = False
    person: str = ""  # keyperson: the ID number
    category: str = ""  # keyperson: its group; need: what is needed
    urgency: str = ""  # need
    due: datetime | None = None  # need: raised + its limit
    task: str = ""  # need: its task's id


@dataclass(order=True)
class _Planned:
    when: datetime
    seq: int
    event: dict[str, Any] = field(compare=False)
    fact: Fact = field(compare=False)
    step: LoopStep | None = field(default=None, compare=False)


class Simulation:
    """The city model. Iterate :meth:`events`; read :attr:`truth` afterwards."""

    def __init__(
        self,
        config: SimulationConfig,
        registry: Registry | None = None,
        places: Places | None = None,
    ) -> None:
        self.config = config
        self.truth = GroundTruth()
        registry = registry or load_registry()
        self._registry = registry
        self._places = places if places is not None else load_places()
        wanted = config.communities
        units = [
            u for u in registry.communities_under(config.area) if wanted is None or u.code in wanted
        ]
        self.communities = [Community.of(i, u, self._places) for i, u in enumerate(units)]
        self._by_code = {c.code: c for c in self.communities}
        self._rng = random.Random(config.seed)
        self._first = config.first_day
        self._later: dict[int, list[_Planned]] = {}
        self._seq = 0
        self._isolated: dict[str, list[tuple[int, int]]] = {}  # community → (from, to) day index
        # the response loop draws from its own generator: the traffic is the same without it
        self._loop_rng = random.Random(f"loop-{config.seed}")
        # so do the places' form (id or labels) and the register and its needs
        self._place_rng = random.Random(f"places-{config.seed}")
        self._care_rng = random.Random(f"care-{config.seed}")
        self._key_persons = {c.code: register(self._care_rng, config, c) for c in self.communities}
        self._steps = 0
        self._outbreaks = [
            Outbreak.numbered(n, code, start)
            for n, (code, start) in enumerate(config.outbreak_sites)
            if config.outbreak and code in self._by_code
        ]
        self._outbreak_at = {o.community: o for o in self._outbreaks}

    # ---- public -----------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any]]:
        """Every reported event in time order (ties by planning order); no loop steps."""
        for item in self.timeline():
            if isinstance(item, dict):
                yield item

    def timeline(self) -> Iterator[dict[str, Any] | LoopStep]:
        """The events and, with ``config.loop``, the response loop's steps, in time order."""
        for index in range(self.config.days + 1):
            if index < self.config.days:
                self._plan_day(index)
            for planned in sorted(self._later.pop(index, [])):
                if self.config.until is not None and planned.when > self.config.until:
                    continue
                self._tally(planned)
                yield planned.event if planned.step is None else planned.step

    def ground_truth(self) -> GroundTruth:
        """Run the whole model once and return its truth (a fresh run: no side effects)."""
        fresh = Simulation(self.config, self._registry, self._places)
        for _event in fresh.events():
            pass
        return fresh.truth

    def case_days(self, community: str | None = None) -> list[int]:
        """The days (indexes) with a new case in an outbreak community (by default the
        first outbreak's), as generated so far."""
        outbreak = self._outbreak_at.get(community or self.config.outbreak_community)
        return sorted(outbreak.case_days) if outbreak else []

    @property
    def outbreaks(self) -> list[str]:
        """The communities with an outbreak in this run, first one first."""
        return [o.community for o in self._outbreaks]

    def day(self, index: int) -> date:
        """The local date of a day index."""
        return self._first + timedelta(days=index)

    # ---- one day ----------------------------------------------------------------------------

    def _plan_day(self, index: int) -> None:
        quiet = self.config.quiet_days_to_lift
        for outbreak in self._outbreaks:
            if index == outbreak.start:
                self._plan_outbreak(outbreak, index)
        for outbreak in self._outbreaks:
            if outbreak.point_due(index, quiet):
                self._lift_point(outbreak, index)
            if outbreak.level_due(index, quiet):
                self._lift(outbreak, index)
        for community in self.communities:
            if self._silent(community, index):
                self.truth.expected_alerts.append(
                    ExpectedAlert("silence", community.code, self.day(index), "stopped reporting")
                )
                continue
            self._plan_screenings(community, index)
            self._plan_suspected(community, index)
            self._plan_care(community, index)
        tallies: dict[str, DayTotals] = {}
        for planned in self._later.get(index, []):
            _count(tallies.setdefault(planned.fact.community, DayTotals()), planned.fact)
        for community in self.communities:
            if not self._silent(community, index):
                self._plan_report(community, index, tallies.get(community.code, DayTotals()))

    def _silent(self, community: Community, index: int) -> bool:
        cfg = self.config
        return community.code == cfg.silent_community and index >= cfg.days - cfg.silent_days

    def _plan_screenings(self, community: Community, index: int) -> None:
        cfg = self.config
        mean = community.population * cfg.screenings_per_resident * cfg.scale
        for _ in range(_poisson(self._rng, mean)):
            site = self._rng.choices(("gate", "building", "self_report"), (5, 2, 3))[0]
            fever = self._rng.random() < cfg.fever_rate
            travel = site == "self_report" and self._rng.random() < cfg.travel_rate / 0.3
            person = self._rng.randrange(community.population)
            hour = self._rng.uniform(7, 10) if site == "self_report" else self._rng.uniform(6, 22)
            when = self._at(index, hour)
            self._screening(community, when, site, person, fever=fever, travel=travel)
            if travel and self._rng.random() < 0.5:
                self._isolate(community, person, when + timedelta(hours=2), "home")

    def _screening(
        self,
        community: Community,
        when: datetime,
        site: str,
        person: int,
        *,
        fever: bool,
        travel: bool = False,
    ) -> None:
        if fever:
            temperature = round(self._rng.uniform(FEVER_C, 39.0), 1)
        else:
            temperature = round(min(37.2, max(35.6, self._rng.gauss(36.5, 0.25))), 1)
        data: dict[str, Any] = {"temperature_c": temperature, "site": site}
        if site == "gate":  # a gate of the resident's compound
            data |= self._where(community, person, compound_only=True)
            source = f"/{community.code}/gate-{person % 3 + 1}"
        else:
            data |= self._where(community, person)
            source = f"/{community.code}/{'app' if site == 'self_report' else site}"
        if site in ("self_report", "household"):
            data["person"] = (
                {"ref": f"p{person}"} if site == "self_report" else self._id(community, person)
            )
        if fever:
            data["symptoms"] = ["fever"] + (["cough"] if self._rng.random() < 0.4 else [])
        if travel:
            data["travel_from_risk_area"] = True
        fact = Fact("screening", community.code, site=site, fever=fever, travel=travel)
        self._emit(when, source, "zhibao.screening.v1", community, data, fact)

    # ---- cases and isolation ----------------------------------------------------------------

    def _plan_suspected(self, community: Community, index: int) -> None:
        mean = community.population * self.config.suspected_per_100k / 100_000
        for _ in range(_poisson(self._rng, mean)):
            person = self._rng.randrange(community.population)
            when = self._at(index, self._rng.uniform(9, 18))
            self._case(community, person, when, "suspected")
            later = when + timedelta(days=self._rng.choice((1, 2)))
            if self._rng.random() < self.config.confirmed_share:
                self._confirm(community, person, later, "confirmed")
            else:
                self._case(community, person, later, "excluded")

    def _confirm(self, community: Community, person: int, when: datetime, kind: str) -> None:
        self._case(community, person, when, kind)
        self._expect(f"immediate_{kind}", community, when, "new case")
        low, high = self.config.contacts_per_case
        for _ in range(self._rng.randint(low, high)):
            contact = self._neighbour(community, person)
            moment = when + timedelta(hours=self._rng.uniform(1, 4))
            self._case(community, contact, moment, "close_contact")
            self._isolate(community, contact, moment + timedelta(minutes=30), "centralized")
        recovery = when + timedelta(days=self._rng.randint(14, 21))
        self._case(community, person, recovery, "recovered")

    def _neighbour(self, community: Community, person: int) -> int:
        if self._rng.random() < 0.6:
            return self._rng.choice(community.residents_of(community.building_of(person)))
        return self._rng.randrange(community.population)

    def _case(self, community: Community, person: int, when: datetime, kind: str) -> None:
        data = {
            "person": self._id(community, person),
            "classification": kind,
            **self._where(community, person),
        }
        outbreak = self._outbreak_at.get(community.code)
        if outbreak is not None and kind in _NEW_CASES:
            outbreak.case_days.add(self._index(when))
        fact = Fact("case", community.code, classification=kind)
        self._emit(
            when, f"/{community.code}/health-centre", "zhibao.case.v1", community, data, fact
        )

    def _isolate(self, community: Community, person: int, when: datetime, kind: str) -> None:
        days = self.config.isolation_days
        start = self._index(when)
        self._isolated.setdefault(community.code, []).append((start, start + days))
        until = (self._local(when) + timedelta(days=days)).isoformat()
        self._isolation(community, person, when, "start", kind, until)
        for offset in range(1, days):
            check = self._at(start + offset, self._rng.uniform(8, 11))
            if self._rng.random() < self.config.missed_check_rate:
                self._missed(community, check)
                continue
            self._isolation(community, person, check, "check", kind, until)
        self._isolation(community, person, self._at(start + days, 10), "end", kind, until)

    def _missed(self, community: Community, when: datetime) -> None:
        index, until = self._index(when), self.config.until
        if until is not None and when > until:
            return
        if index < self.config.days and not self._silent(community, index):
            self.truth.at(community.code, self._local(when)).missed_checks += 1
            self._expect("missed_check", community, when, "check missed")

    def _isolation(
        self,
        community: Community,
        person: int,
        when: datetime,
        action: str,
        kind: str,
        until: str,
    ) -> None:
        data: dict[str, Any] = {
            "person": self._id(community, person),
            "action": action,
            "kind": kind,
            "until": until,
        }
        if action == "check":
            data["temperature_c"] = round(min(37.2, max(35.8, self._rng.gauss(36.5, 0.2))), 1)
        fact = Fact("isolation", community.code, action=action)
        self._emit(when, f"/{community.code}/grid", "zhibao.isolation.v1", community, data, fact)

    # ---- daily reports ----------------------------------------------------------------------

    def _plan_report(self, community: Community, index: int, tally: DayTotals) -> None:
        """The community's daily report of the day's ``tally`` (what was planned for it)."""
        in_isolation = sum(a <= index < b for a, b in self._isolated.get(community.code, []))
        late = self._rng.random() < self.config.late_report_rate
        when = (
            self._at(index + 1, self._rng.uniform(9.5, 14))
            if late
            else self._at(index, self._rng.uniform(20, 23.5))
        )
        zero = tally.fevers == 0 and not tally.new_cases
        data = {
            "date": self.day(index).isoformat(),
            "zero": zero,
            "counts": {
                "screenings": tally.screenings,
                "fevers": tally.fevers,
                "new_suspected": tally.new_cases["suspected"],
                "new_confirmed": tally.new_cases["confirmed"],
                "in_isolation": in_isolation,
            },
        }
        fact = Fact("report", community.code, report_day=self.day(index), late=late)
        source = f"/{community.code}/daily"
        self._emit(when, source, "zhibao.daily_report.v1", community, data, fact, allow_after=True)

    # ---- the outbreak -----------------------------------------------------------------------

    def _plan_outbreak(self, outbreak: Outbreak, index: int) -> None:
        community = self._by_code[outbreak.community]
        building = self._rng.randrange(community.buildings)
        residents = list(community.residents_of(building))
        sick = self._rng.sample(residents, min(len(residents), 12))
        compound, label = community.place(sick[0])
        home = community.home(sick[0])
        outbreak.sealed = home.compound_id if home is not None else compound
        outbreak.restricted_from = index + 2
        first_fevers = self._at(index, 20)
        # the alerts service keys a cluster by the registered building intake matched
        cluster_place = home.building_id if home is not None else f"{compound}/{label}"
        self._expect("fever_cluster", community, first_fevers, cluster_place)
        self._expect("ears_fevers", community, first_fevers, "outbreak fevers")
        fevers = {0: sick[:5], 1: sick[5:9], 2: sick[9:11]}
        for offset, people in fevers.items():
            for person in people:
                when = self._at(index + offset, self._rng.uniform(8, 20))
                self._screening(community, when, "household", person, fever=True)
        for person in sick[:4]:
            self._case(
                community, person, self._at(index + 1, self._rng.uniform(14, 20)), "suspected"
            )
        outcomes = ("confirmed", "confirmed", "asymptomatic", "excluded")
        for person, outcome in zip(sick[:4], outcomes, strict=True):
            when = self._at(index + 2, self._rng.uniform(9, 16))
            if outcome == "excluded":
                self._case(community, person, when, outcome)
            else:
                self._confirm(community, person, when, outcome)
        for offset, people in ((3, sick[4:6]), (4, sick[6:7])):
            for person in people:
                self._confirm(community, person, self._at(index + offset, 11), "confirmed")
        self._breach(community, sick[11], index + 3)
        if self.config.loop:
            self._declare(outbreak, outbreak.sealed, self._at(index + 2, 18))
            self._push_companions(outbreak, self._at(companion_day(outbreak.start), 8))

    def _breach(self, community: Community, person: int, index: int) -> None:
        when = self._at(index, 15)
        self._isolate(community, person, when - timedelta(hours=6), "home")
        self._isolation(community, person, when, "breach", "home", self.day(index + 14).isoformat())
        self._expect("immediate_breach", community, when, "door opened")

    # ---- residents who need help -------------------------------------------------------------

    def _plan_care(self, community: Community, index: int) -> None:
        """The day's registrations and removals and the key persons' needs (one draw per
        key person and day, whatever happens)."""
        rng = self._care_rng
        for key_person in self._key_persons[community.code]:
            if index == key_person.since:
                for group in key_person.groups:
                    when = self._at(index, rng.uniform(8, 12))
                    self._key_person(community, key_person.person, group.value, "register", when)
            if index == key_person.removed:
                when = self._at(index, rng.uniform(8, 12))
                first = key_person.groups[0].value
                self._key_person(community, key_person.person, first, "remove", when)
            groups = key_person.groups_on(index)
            if rng.random() < self._need_rate(community, key_person.person, index) and groups:
                self._need(community, key_person, groups, index)

    def _restriction(self, community: Community, person: int, index: int) -> str | None:
        """``sealed`` (the outbreak's compound), ``red`` (its community) while the outbreak
        restricts it, else None."""
        outbreak = self._outbreak_at.get(community.code)
        if outbreak is None or not outbreak.restricted(index, self.config.quiet_days_to_lift):
            return None
        home = community.home(person)
        compound = home.compound_id if home is not None else community.place(person)[0]
        return "sealed" if compound == outbreak.sealed else "red"

    def _need_rate(self, community: Community, person: int, index: int) -> float:
        cfg = self.config
        factor = {None: 1.0, "red": cfg.red_need_factor, "sealed": cfg.sealed_need_factor}
        return cfg.need_rate * factor[self._restriction(community, person, index)]

    def _key_person(
        self, community: Community, person: int, group: str, action: str, when: datetime
    ) -> None:
        data: dict[str, Any] = {
            "person": self._id(community, person),
            "category": group,
            "action": action,
        }
        if action == "register":
            data |= self._where(community, person)
        id_number = community.id_number(person)
        fact = Fact("keyperson", community.code, action=action, person=id_number, category=group)
        source = f"/{community.code}/care-app"
        self._emit(when, source, "zhibao.keyperson.v1", community, data, fact)

    def _need(
        self,
        community: Community,
        key_person: KeyPerson,
        groups: tuple[KeyPersonCategory, ...],
        index: int,
    ) -> None:
        rng = self._care_rng
        sealed = self._restriction(community, key_person.person, index) == "sealed"
        category, urgency = need_of(rng, self.config, rng.choice(groups), sealed)
        when = self._at(index, rng.uniform(7, 21))
        limit = limit_hours(category, urgency)
        fate = need_fate(rng, self.config, limit)
        data: dict[str, Any] = {
            "person": self._id(community, key_person.person),
            "category": category.value,
            "urgency": urgency.value,
            **self._where(community, key_person.person),
        }
        due = when + timedelta(hours=limit)
        id_number = community.id_number(key_person.person)
        fact = Fact("need", community.code, person=id_number, category=category.value)
        fact = replace(fact, urgency=urgency.value, due=due)
        source = f"/{community.code}/care-app"
        planned = self._emit(when, source, "zhibao.need.v1", community, data, fact)
        if planned is None:
            return
        task = need_task_id(event_identity(community.code, source, planned.event["id"]))
        planned.fact = replace(fact, task=task)
        if fate.outcome is not None and self.config.loop:
            moment = when + timedelta(hours=fate.hours)
            result = ReportResult(moment, task, community.code, "done", "visit", task=task)
            self._step(moment, replace(result, measures=()))

    # ---- the response loop -------------------------------------------------------------------

    def _declare(self, outbreak: Outbreak, compound: str, when: datetime) -> None:
        reason = "building outbreak: confirmed cases"
        unit, key = outbreak.community, outbreak.tasks_key
        level = DeclareLevel(when, unit, self.config.level, reason, (compound,), key)
        self._step(when, level)
        self._step(when, DeclarePoint(when, unit, compound, "confirmed cases"))
        outbreak.point = compound
        outbreak.declared_day = self._index(when)
        for ordinal, decision in enumerate(declared_decisions(self._loop_rng, self.config)):
            if decision.outcome is not None:
                moment = when + timedelta(hours=decision.hours)
                result = ReportResult(moment, f"{key}-{ordinal}", unit, "done", "visit")
                self._step(moment, result)

    def _lift_point(self, outbreak: Outbreak, index: int) -> None:
        assert outbreak.point is not None
        outbreak.point_lifted = True
        when = self._at(index, 9)
        reason = f"{self.config.quiet_days_to_lift} days after the last case: lifted on schedule"
        self._step(when, LiftPoint(when, outbreak.community, outbreak.point, reason))

    def _lift(self, outbreak: Outbreak, index: int) -> None:
        outbreak.lifted = True
        when = self._at(index, 10)
        reason = f"{self.config.quiet_days_to_lift} days without a new case"
        self._step(when, DeclareLevel(when, outbreak.community, LIFTED, reason))

    def _push_companions(self, outbreak: Outbreak, when: datetime) -> None:
        cfg, rng = self.config, self._loop_rng
        site, prefix = outbreak.community, outbreak.prefix
        plans = companion_tasks(rng, cfg, self.communities, when, site, prefix)
        if not plans:
            return
        self._step(when, IssueTasks(when, tuple(plans)))
        for plan in plans:
            decision = decide(rng, cfg, cfg.companion_deadline_hours)
            target = transfer_target(rng, self.communities, plan.unit)
            if decision.outcome is None or (
                decision.outcome == "transferred" and target == plan.unit
            ):
                continue  # no result (a lone community has nowhere to transfer to)
            moment = when + timedelta(hours=decision.hours)
            to = target if decision.outcome == "transferred" else None
            result = ReportResult(
                moment, plan.key, plan.unit, decision.outcome, decision.method, to
            )
            self._step(moment, result)

    def _step(self, when: datetime, step: LoopStep) -> None:
        index = self._index(when)
        if index >= self.config.days:
            return
        if isinstance(step, ReportResult) and self._silent(self._by_code[step.community], index):
            return
        self._steps += 1
        planned = _Planned(when, _STEP_SEQ + self._steps, {}, Fact("loop", ""), step)
        self._later.setdefault(index, []).append(planned)

    def _tally_step(self, step: LoopStep) -> None:
        tasks = self.truth.tasks
        if isinstance(step, DeclarePoint | LiftPoint):
            action = "declared" if isinstance(step, DeclarePoint) else "lifted"
            self.truth.points.append((step.when, step.unit, step.compound, action))
            return
        if isinstance(step, DeclareLevel):
            self.truth.levels.append((step.when, step.unit, step.level))
            if step.level == LIFTED:
                for task in tasks.values():
                    if task.declared and task.open and task.unit == step.unit:
                        task.state = "cancelled"
                return
            for ordinal in range(DECLARED_DECISIONS):
                key = f"{step.tasks_key}-{ordinal}"
                tasks[key] = ExpectedTask(key, "playbook", step.unit, None, declared=True)
        elif isinstance(step, IssueTasks):
            for plan in step.tasks:
                tasks[plan.key] = ExpectedTask(plan.key, plan.kind, plan.unit, plan.due)
        elif step.key in tasks:
            _apply(tasks[step.key], step)
        elif step.key in self.truth.needs:
            need = self.truth.needs[step.key]
            need.done_at = need.done_at or step.when

    def _expect(self, rule: str, community: Community, when: datetime, reason: str) -> None:
        """Note an alert the traffic should cause, if its event is within the run."""
        index, until = self._index(when), self.config.until
        if index >= self.config.days or self._silent(community, index):
            return
        if until is None or when <= until:
            self.truth.expected_alerts.append(
                ExpectedAlert(rule, community.code, self._local(when), reason)
            )

    # ---- plumbing ---------------------------------------------------------------------------

    def _emit(
        self,
        when: datetime,
        source: str,
        event_type: str,
        community: Community,
        data: dict[str, Any],
        fact: Fact,
        *,
        allow_after: bool = False,
    ) -> _Planned | None:
        index = self._index(when)
        if index >= self.config.days + (1 if allow_after else 0):
            return None
        if self._silent(community, min(index, self.config.days - 1)):
            return None
        self._seq += 1
        event = {
            "specversion": "1.0",
            "id": f"sim{self.config.seed}-{self._first:%Y%m%d}-{self._seq}",
            "source": source,
            "type": event_type,
            "subject": community.code,
            "time": when.isoformat(),
            "data": data,
        }
        planned = _Planned(when, self._seq, event, fact)
        self._later.setdefault(index, []).append(planned)
        return planned

    def _tally(self, planned: _Planned) -> None:
        if planned.step is not None:
            self._tally_step(planned.step)
            return
        fact = planned.fact
        self.truth.at(fact.community, self._local(planned.when)).events += 1
        if fact.kind in ("keyperson", "need"):
            self._tally_care(planned.when, fact)
        elif fact.kind == "report" and fact.report_day is not None:
            totals = self.truth.at(fact.community, fact.report_day)
            totals.reported = True
            totals.reported_late = fact.late
        else:
            _count(self.truth.at(fact.community, self._local(planned.when)), fact)

    def _tally_care(self, when: datetime, fact: Fact) -> None:
        if fact.kind == "keyperson":
            key = (fact.community, fact.person, fact.category)
            self.truth.register[key] = fact.action == "register"
            return
        assert fact.due is not None
        self.truth.needs[fact.task] = ExpectedNeed(
            fact.task, fact.community, fact.person, fact.category, fact.urgency, when, fact.due
        )

    def _where(
        self, community: Community, person: int, *, compound_only: bool = False
    ) -> dict[str, str]:
        """Where a resident lives as an event names it: the registered building's (or
        compound's) id, for ``label_share`` of events the labels instead."""
        home = community.home(person)
        if home is None or self._place_rng.random() < self.config.label_share:
            compound, building = community.place(person)
            return (
                {"compound": compound}
                if compound_only
                else {"compound": compound, "building": building}
            )
        return {"place": home.compound_id if compound_only else home.building_id}

    def _id(self, community: Community, person: int) -> dict[str, str]:
        return {"id_number": community.id_number(person)}

    def _at(self, index: int, hour: float) -> datetime:
        start = datetime.combine(self.day(index), time(0), tzinfo=self.config.zone)
        return start + timedelta(seconds=round(hour * 3600))

    def _local(self, when: datetime) -> date:
        return when.astimezone(self.config.zone).date()

    def _index(self, when: datetime) -> int:
        return (self._local(when) - self._first).days


def _apply(task: ExpectedTask, result: ReportResult) -> None:
    """A task as a community's result leaves it."""
    if not task.open:
        return
    if result.outcome == "transferred" and result.transfer_to is not None:
        task.unit, task.transferred = result.transfer_to, True
        return
    task.state = result.outcome
    task.late = task.due is not None and result.when > task.due


def _count(totals: DayTotals, fact: Fact) -> None:
    if fact.kind == "screening":
        totals.screenings += 1
        totals.fevers += fact.fever
        totals.by_site[fact.site] += 1
        totals.travel_flags += fact.travel
    elif fact.kind == "case":
        totals.new_cases[fact.classification] += 1
    elif fact.kind == "isolation":
        totals.isolation[fact.action] += 1


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
