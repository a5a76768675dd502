"""The response loop's steps and decisions (pure, seeded; no I/O).

The command centre declares a level for each outbreak community (its playbook
issues tasks), pushes companion-verification tasks down to several communities
in one request, and lifts the level after a quiet spell. Each community decides
per task whether, when and how it reports a result: most on time by a visit,
some late, some unreachable or transferred by phone, a few not within the run.
Tasks are named by a simulator key (``companion-17``, ``declared-0``; a later
outbreak's prefixed, ``outbreak2-companion-17``); the response service's ids are
only known at run time (:mod:`.command_centre`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zhibao_client.simulator.config import SimulationConfig
from zhibao_client.simulator.people import Community
from zhibao_shared.hierarchy import district_of

COMPANION_KIND = "verify_companion"
#: How many of a declaration's tasks the model decides for (a playbook issues fewer).
DECLARED_DECISIONS = 32
#: The level that lifts a declaration.
LIFTED = "none"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


@dataclass(frozen=True)
class Decision:
    """What a community does about one task."""

    outcome: str | None  # done, unreachable, transferred; None: no result within the run
    method: str  # visit or phone
    hours: float  # after the task was issued
    late: bool  # after its deadline


@dataclass(frozen=True)
class TaskPlan:
    """A task the command centre issues (its personal details as a command centre has them)."""

    key: str
    unit: str
    kind: str
    due: datetime
    person: str  # the resident's ID number
    contact: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The task as ``POST /v1/tasks`` takes it."""
        return {
            "unit": self.unit,
            "kind": self.kind,
            "due": self.due.isoformat(),
            "person": {"id_number": self.person},
            "contact": self.contact,
            "note": "时空伴随者 spatio-temporal companion: verify by a visit",
        }


@dataclass(frozen=True)
class DeclareLevel:
    """The command centre declares (or, with level ``none``, lifts) a unit's level.

    The playbook's tasks are known to the simulator as ``<tasks_key>-<n>``.
    """

    when: datetime
    unit: str
    level: str
    reason: str
    compounds: tuple[str, ...] = ()
    tasks_key: str = "declared"


@dataclass(frozen=True)
class DeclarePoint:
    """The command centre declares an epidemic point (疫点) at a compound, from ``when``."""

    when: datetime
    unit: str
    compound: str
    reason: str


@dataclass(frozen=True)
class LiftPoint:
    """The command centre lifts the epidemic point at a community's compound."""

    when: datetime
    unit: str
    compound: str
    reason: str


@dataclass(frozen=True)
class IssueTasks:
    """The command centre pushes tasks down (one request per 5,000)."""

    when: datetime
    tasks: tuple[TaskPlan, ...]


@dataclass(frozen=True)
class ReportResult:
    """A community reports a task's result through intake."""

    when: datetime
    key: str
    community: str
    outcome: str
    method: str
    transfer_to: str | None = None
    #: The service's id when known beforehand (a need's task: derived from the need).
    task: str | None = None
    measures: tuple[str, ...] = ("tested",)  # when done

    def event(self, task_id: str) -> dict[str, Any]:
        """The ``zhibao.task_result.v1`` CloudEvent for the task the service calls ``task_id``."""
        data: dict[str, Any] = {"task": task_id, "outcome": self.outcome, "method": self.method}
        if self.outcome == "done" and self.measures:
            data["measures"] = list(self.measures)
        if self.transfer_to is not None:
            data["transfer_to"] = self.transfer_to
        return {
            "specversion": "1.0",
            "id": f"sim-result-{task_id}",
            "source": f"/{self.community}/worker-app",
            "type": "zhibao.task_result.v1",
            "subject": self.community,
            "time": self.when.isoformat(),
            "data": data,
        }


LoopStep = DeclareLevel | DeclarePoint | LiftPoint | IssueTasks | ReportResult


def decide(rng: random.Random, config: SimulationConfig, deadline_hours: float) -> Decision:
    """One task's fate: three draws, whatever the outcome (so later tasks do not shift)."""
    kind, timing, lateness = rng.random(), rng.random(), rng.random()
    on_time = 1 + timing * max(0.0, deadline_hours - 2)
    shares = (config.unfinished_share, config.unreachable_share, config.transferred_share)
    if kind < shares[0]:
        return Decision(None, "visit", 0.0, late=False)
    if kind < sum(shares[:2]):
        return Decision("unreachable", "phone", on_time, late=False)
    if kind < sum(shares):
        return Decision("transferred", "phone", on_time, late=False)
    if lateness < config.late_task_share:
        return Decision("done", "visit", deadline_hours + 1 + timing * 47, late=True)
    return Decision("done", "visit", on_time, late=False)


def declared_decisions(rng: random.Random, config: SimulationConfig) -> list[Decision]:
    """The fate of a declaration's tasks by ordinal: done within a day, or left open."""
    out = []
    for _ in range(DECLARED_DECISIONS):
        left_open, hours = rng.random() < config.declared_open_share, 1 + rng.random() * 19
        out.append(Decision(None if left_open else "done", "visit", hours, late=False))
    return out


def companion_count(config: SimulationConfig, communities: list[Community]) -> int:
    """How many companions the command centre pushes down (scaled like the traffic)."""
    population = sum(c.population for c in communities)
    return round(population * config.companions_per_resident * config.scale)


def companion_tasks(
    rng: random.Random,
    config: SimulationConfig,
    communities: list[Community],
    issued: datetime,
    outbreak: str | None = None,
    prefix: str = "",
) -> list[TaskPlan]:
    """The companions to verify, spread over the communities (most near the outbreak:
    ``outbreak``, by default the first one); keys ``<prefix>companion-<n>``."""
    site = outbreak or config.outbreak_community
    weights = [c.population * _nearness(c.code, site) for c in communities]
    due = issued + timedelta(hours=config.companion_deadline_hours)
    plans = []
    for n in range(companion_count(config, communities)):
        community = rng.choices(communities, weights)[0]
        person = rng.randrange(community.population)
        name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))
        contact = {
            "name": name,
            "phone": f"13{rng.randrange(10**9):09d}",
            "address": community.address(person),
        }
        plans.append(
            TaskPlan(
                f"{prefix}companion-{n}",
                community.code,
                COMPANION_KIND,
                due,
                community.id_number(person),
                contact,
            )
        )
    return plans


def transfer_target(rng: random.Random, communities: list[Community], current: str) -> str:
    """Another community of the same district the person turns out to live in (a
    community may transfer a task within its district only)."""
    district = district_of(current)
    others = [c.code for c in communities if c.code != current and district_of(c.code) == district]
    return rng.choice(others) if others else current


def _nearness(code: str, outbreak: str) -> int:
    if code == outbreak:
        return 5
    return 2 if code[:9] == outbreak[:9] else 1
