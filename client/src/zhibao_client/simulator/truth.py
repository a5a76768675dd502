"""Ground truth: what the simulator generated, counted at the moment it decided it.

The counts are kept by the model from its own decisions (not by re-reading
the events), so a test that counts the events independently checks both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

FEVER_C = 37.3


@dataclass
class DayTotals:
    """One community's figures for one local day (by the events' ``time``)."""

    screenings: int = 0
    fevers: int = 0  # temperature ≥ 37.3 °C
    by_site: Counter[str] = field(default_factory=Counter)
    travel_flags: int = 0
    new_cases: Counter[str] = field(default_factory=Counter)  # classification → reports
    isolation: Counter[str] = field(default_factory=Counter)  # action → events
    missed_checks: int = 0  # checks that were due and did not happen
    reported: bool = False  # a daily report for this day was sent (at any time)
    reported_late: bool = False  # … after the deadline (next day 09:00)
    events: int = 0  # events whose time falls on this day


@dataclass(frozen=True)
class ExpectedAlert:
    """An alert the generated traffic should cause, and why."""

    rule: str  # immediate_confirmed, immediate_breach, fever_cluster, silence, missed_check, ears
    unit: str
    day: date
    reason: str


#: Task states that are still open (a transferred task is re-issued to its new community).
OPEN_TASK_STATES = ("issued", "accepted")


@dataclass
class ExpectedTask:
    """A task of the response loop as the simulation leaves it (the service's view of it)."""

    key: str
    kind: str
    unit: str  # its community now (the new one after a transfer)
    due: datetime | None  # None for a level's tasks: the service sets their deadline
    declared: bool = False  # issued by a level's playbook (closed when the level is lifted)
    state: str = "issued"  # issued, done, unreachable, cancelled
    late: bool = False  # done after its deadline
    transferred: bool = False

    @property
    def open(self) -> bool:
        """Still to be done."""
        return self.state in OPEN_TASK_STATES

    def overdue(self, at: datetime) -> bool:
        """Open and past its deadline at ``at`` (a level's tasks: unknown, False)."""
        return self.open and self.due is not None and at > self.due


@dataclass
class ExpectedNeed:
    """A need as the simulation leaves it: its task (the id the response service derives
    from the need's identity), open or done."""

    task: str
    community: str
    person: str  # the ID number
    category: str
    urgency: str
    raised: datetime
    due: datetime
    done_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Not yet met."""
        return self.done_at is None

    @property
    def late(self) -> bool:
        """Met after its limit."""
        return self.done_at is not None and self.done_at > self.due

    def overdue(self, at: datetime) -> bool:
        """Open and past its limit at ``at``."""
        return self.open and at > self.due


@dataclass(frozen=True)
class NeedFigures:
    """The needs' figures of a unit at one moment."""

    raised: int
    open: int
    overdue: int
    done: int
    done_late: int


@dataclass(frozen=True)
class TaskFigures:
    """The response loop's figures at one moment."""

    issued: int
    open: int
    overdue: int
    done: int
    done_late: int
    unreachable: int
    transferred: int
    cancelled: int


@dataclass
class GroundTruth:
    """Per community and day totals, plus the alerts the model meant to cause and the
    response loop's levels and tasks."""

    days: dict[tuple[str, date], DayTotals] = field(default_factory=dict)
    expected_alerts: list[ExpectedAlert] = field(default_factory=list)
    duplicates_delivered: int = 0
    #: (time, unit, level) of each declaration, ``none`` lifting it.
    levels: list[tuple[datetime, str, str]] = field(default_factory=list)
    #: epidemic points declared and lifted: (when, community, compound, "declared"/"lifted")
    points: list[tuple[datetime, str, str, str]] = field(default_factory=list)
    tasks: dict[str, ExpectedTask] = field(default_factory=dict)
    #: The key-person register: (community, ID number, category) → registered (False:
    #: removed), as the latest action left it.
    register: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    #: Every need raised, by its task's id.
    needs: dict[str, ExpectedNeed] = field(default_factory=dict)

    def key_persons(self, unit: str = "") -> dict[str, int]:
        """``{category: persons}`` on the registers of the communities under ``unit`` (the
        rollups' ``key_persons``)."""
        counts: Counter[str] = Counter(
            category
            for (community, _person, category), registered in self.register.items()
            if registered and community.startswith(unit)
        )
        return dict(sorted(counts.items()))

    def registered(self, community: str) -> set[str]:
        """The ID numbers on a community's register (in any group)."""
        return {
            person
            for (unit, person, _category), registered in self.register.items()
            if registered and unit == community
        }

    def need_figures(self, at: datetime, unit: str = "") -> NeedFigures:
        """The needs of the communities under ``unit``, ``overdue`` as of ``at``."""
        needs = [n for n in self.needs.values() if n.community.startswith(unit)]
        return NeedFigures(
            raised=len(needs),
            open=sum(n.open for n in needs),
            overdue=sum(n.overdue(at) for n in needs),
            done=sum(not n.open for n in needs),
            done_late=sum(n.late for n in needs),
        )

    def keep_declared(self, issued: int, unit: str) -> None:
        """The service's playbook issued ``issued`` tasks for ``unit``'s level: forget the
        model's other ordinals of that level."""
        for key in [k for k, t in self.tasks.items() if t.declared and t.unit == unit]:
            if int(key.rsplit("-", 1)[1]) >= issued:
                del self.tasks[key]

    def task_figures(self, at: datetime, kind: str | None = None) -> TaskFigures:
        """Figures over the tasks (of one kind), ``overdue`` as of ``at``."""
        tasks = [t for t in self.tasks.values() if kind is None or t.kind == kind]
        return TaskFigures(
            issued=len(tasks),
            open=sum(t.open for t in tasks),
            overdue=sum(t.overdue(at) for t in tasks),
            done=sum(t.state == "done" for t in tasks),
            done_late=sum(t.late for t in tasks),
            unreachable=sum(t.state == "unreachable" for t in tasks),
            transferred=sum(t.transferred for t in tasks),
            cancelled=sum(t.state == "cancelled" for t in tasks),
        )

    def at(self, community: str, day: date) -> DayTotals:
        """The totals of one community and day (created empty on first use)."""
        return self.days.setdefault((community, day), DayTotals())

    def total(self, attribute: str) -> int:
        """A figure summed over every community and day (e.g. ``"screenings"``)."""
        return sum(int(getattr(t, attribute)) for t in self.days.values())

    def new_cases(self, classification: str) -> int:
        """New case reports of one classification over every community and day."""
        return sum(t.new_cases[classification] for t in self.days.values())

    @property
    def events(self) -> int:
        """Distinct events generated."""
        return self.total("events")
