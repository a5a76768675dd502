"""Rules and on-call configuration (YAML), validated with pydantic.

A bad file is refused with the validation error; the caller keeps the
configuration it had (see ``zhibao_alerts.config_files``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from zhibao_alerts.domain.ears import BASELINE_DAYS, EarsParams
from zhibao_shared.events import Classification, IsolationAction
from zhibao_shared.hierarchy import CODE_PREFIX, Level, ancestors
from zhibao_shared.task_events import TASK_KIND

#: The EARS methods, spelled as in the literature (``c2`` is refused, not crashed on).
EarsMethod = Literal["C1", "C2", "C3"]
#: The daily counts the EARS rule can watch.
EarsMetric = Literal["fevers", "suspected"]
#: What can alert at once: a case classification or an isolation action.
IMMEDIATE_KINDS = frozenset(
    [*(c.value for c in Classification), *(a.value for a in IsolationAction)]
)


class Severity(StrEnum):
    """How urgent an alert is."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterRule(_Strict):
    """N or more fevers in the same compound or building within a window."""

    min_fevers: int = Field(default=3, ge=2)
    window_hours: float = Field(default=24, gt=0)
    severity: Severity = Severity.WARNING


class AberrationRule(_Strict):
    """EARS on each unit's daily counts."""

    methods: tuple[EarsMethod, ...] = ("C1", "C2", "C3")
    metrics: tuple[EarsMetric, ...] = ("fevers", "suspected")
    levels: tuple[Level, ...] = (Level.COMMUNITY, Level.STREET, Level.DISTRICT)
    threshold: float = 3.0
    c3_threshold: float = 2.0
    min_sd: float = Field(default=1.0, gt=0)
    min_baseline_days: int = Field(
        default=3,
        ge=2,
        le=BASELINE_DAYS,
        description="Days of a unit's own data its baseline needs before it is evaluated "
        "(days before its first data are missing, not zero)",
    )
    severity: Severity = Severity.WARNING

    @property
    def params(self) -> EarsParams:
        """The EARS parameters."""
        return EarsParams(self.threshold, self.c3_threshold, self.min_sd, self.min_baseline_days)


class ResponsePeriod(_Strict):
    """A declared epidemic response period (应急响应期) for units under some code prefixes."""

    start: AwareDatetime
    end: AwareDatetime | None = Field(default=None, description="Open-ended when null")
    units: tuple[str, ...] = Field(
        default=(),
        description="Code prefixes the declaration covers; none: every unit of the registry",
    )

    def covers(self, community: str, at: datetime) -> bool:
        """True when ``community`` is under the declaration and ``at`` is within it."""
        within = self.start <= at and (self.end is None or at < self.end)
        under = not self.units or any(community.startswith(prefix) for prefix in self.units)
        return within and under


class SilenceRule(_Strict):
    """A community that has gone silent: no daily report by the deadline, or no events."""

    report_due_hours: float | None = Field(
        default=None,
        gt=0,
        description="Deprecated: the deadline is ZHIBAO_DAILY_REPORT_DEADLINE, shared with "
        "the dashboard; a value here must equal it (in hours) or the file is refused",
    )
    active_days: int = Field(
        default=7,
        gt=0,
        description="The missing-report rule watches communities that sent anything in this "
        "many days; a community silent longer (or that never sent anything) is alerted as "
        "silent_community instead",
    )
    silent_repeat_hours: float = Field(
        default=24, gt=0, description="How often a silent community's alert is repeated"
    )
    no_events_hours: float | None = Field(
        default=None,
        gt=0,
        description="During a declared response period: alert when a "
        "community sends nothing for this long (off when null)",
    )
    response_periods: tuple[ResponsePeriod, ...] = Field(
        default=(),
        description="Declared response periods; when none are listed and no_events_hours "
        "is set, the whole district is treated as responding",
    )
    severity: Severity = Severity.WARNING

    def responding(self, community: str, at: datetime) -> bool:
        """Whether the no-events rule applies to ``community`` at ``at``."""
        if not self.response_periods:
            return True
        return any(period.covers(community, at) for period in self.response_periods)


class IsolationRule(_Strict):
    """A person in isolation without a health check for too long."""

    missed_check_hours: float = Field(default=24, gt=0)
    severity: Severity = Severity.WARNING


class TaskKindRule(_Strict):
    """How overdue tasks of one kind alert, where it differs from ``task_overdue``'s."""

    severity: Severity | None = None
    page: bool | None = Field(default=None, description="false: recorded, nobody paged")


#: A task kind as the response service spells it (``verify_companion``).
TaskKind = Annotated[str, StringConstraints(pattern=TASK_KIND)]


class TaskOverdueRule(_Strict):
    """A task pushed down to a community still open after its due time."""

    severity: Severity = Severity.WARNING
    page: bool = Field(
        default=True,
        description="false: the alert is recorded (state `recorded`, listed, acknowledgeable) "
        "but nobody is paged and it does not escalate",
    )
    kinds: dict[TaskKind, TaskKindRule] = Field(
        default_factory=dict, description="Per task kind: its own severity or paging"
    )
    urgent: dict[TaskKind, TaskKindRule] = Field(
        default_factory=lambda: {"need_medical": TaskKindRule(severity=Severity.CRITICAL)},
        description="Per need task kind: how its urgent needs' overdue tasks alert (an "
        "urgent medical need not met within its limit is critical); kinds not listed "
        "alert as their ordinary tasks",
    )

    def _own(self, kind: str, urgent: bool) -> list[TaskKindRule]:
        """The rules of ``kind`` that apply, the most specific first."""
        found = [self.urgent[kind]] if urgent and kind in self.urgent else []
        return found + ([self.kinds[kind]] if kind in self.kinds else [])

    def severity_for(self, kind: str, urgent: bool = False) -> Severity:
        """The severity of an overdue task of ``kind`` (an urgent need's: ``urgent``)."""
        own = [r.severity for r in self._own(kind, urgent) if r.severity is not None]
        return own[0] if own else self.severity

    def pages_for(self, kind: str, urgent: bool = False) -> bool:
        """Whether an overdue task of ``kind`` pages anyone."""
        own = [r.page for r in self._own(kind, urgent) if r.page is not None]
        return own[0] if own else self.page


class KeyPersonRule(_Strict):
    """A key person in isolation or an epidemic point without contact for too long (the
    hours are ZHIBAO_ALERTS_KEYPERSON_CONTACT_HOURS)."""

    severity: Severity = Severity.WARNING
    sealed_levels: tuple[Literal["red", "orange", "yellow", "blue"], ...] = Field(
        default=("red",),
        description="Declared response levels under which a unit's key persons are "
        "watched as in a sealed building (足不出户); empty: only isolation and epidemic "
        "points",
    )


class Rules(_Strict):
    """The warning rules."""

    immediate: dict[str, Severity] = Field(
        default_factory=lambda: {
            "confirmed": Severity.CRITICAL,
            "asymptomatic": Severity.WARNING,
            "deceased": Severity.CRITICAL,
            "breach": Severity.WARNING,
        },
        description="Case classifications and isolation actions that alert at once",
    )
    cluster: ClusterRule = ClusterRule()
    aberration: AberrationRule = AberrationRule()
    silence: SilenceRule = SilenceRule()
    isolation: IsolationRule = IsolationRule()
    task_overdue: TaskOverdueRule = TaskOverdueRule()
    key_persons: KeyPersonRule = KeyPersonRule()

    def deadline_conflict(self, deadline: timedelta) -> str | None:
        """Why these rules disagree with the shared daily-report deadline, if they do."""
        hours = self.silence.report_due_hours
        if hours is None or timedelta(hours=hours) == deadline:
            return None
        shared = deadline / timedelta(hours=1)
        return (
            f"silence.report_due_hours: {hours:g} disagrees with ZHIBAO_DAILY_REPORT_DEADLINE "
            f"({shared:g} h, the dashboard's deadline too); remove it from the rules file"
        )

    @field_validator("immediate")
    @classmethod
    def _known_kinds(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        unknown = sorted(set(value) - IMMEDIATE_KINDS)
        if unknown:
            known = ", ".join(sorted(IMMEDIATE_KINDS))
            raise ValueError(f"unknown classification or action {unknown} (known: {known})")
        return value


class Robot(_Strict):
    """A chat-group robot: its webhook URL and, for signed robots, the signing secret."""

    url: HttpUrl
    secret: SecretStr | None = None
    per_minute: int | None = Field(
        default=None,
        ge=1,
        le=600,
        description="Messages this robot accepts a minute; default: the file's "
        "robot_messages_per_minute",
    )


class Reach(_Strict):
    """How someone (staff, never residents) is reached: their channels."""

    webhook: HttpUrl | None = Field(default=None, description="Alertmanager v4 JSON")
    dingtalk: Robot | None = Field(default=None, description="DingTalk custom robot")
    wecom: Robot | None = Field(default=None, description="WeCom group robot")
    feishu: Robot | None = Field(default=None, description="Feishu bot")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")

    def channels(self) -> list[tuple[str, str]]:
        """(channel, target URL) pairs this person is reached on."""
        found = [("webhook", str(self.webhook))] if self.webhook else []
        for channel in ("dingtalk", "wecom", "feishu"):
            robot = getattr(self, channel)
            if robot is not None:
                found.append((channel, str(robot.url)))
        if self.email:
            found.append(("email", self.email))
        return found


class Person(Reach):
    """Someone on call (staff, never residents) and how to reach them."""

    name: str
    role: str | None = Field(default=None, description="e.g. 社区书记, 网格员")

    @property
    def label(self) -> str:
        """The person as a personal token names them: "王芳 (社区书记)"."""
        return f"{self.name} ({self.role})" if self.role else self.name


#: A registered grid's id (``zhibao_shared.places``): ``<community12>-G<nnn>``.
GRID_ID = r"^\d{12}-G\d{3}$"


class GridWorkerReach(Reach):
    """How the worker of a grid is reached (who the worker is, the places registry says).

    ``grid``: that grid's worker. ``community``: every grid worker of the community
    (e.g. the community's grid-worker group robot), for its grids without an entry of
    their own.
    """

    grid: str | None = Field(default=None, pattern=GRID_ID)
    community: str | None = Field(default=None, pattern=r"^\d{12}$")

    @model_validator(mode="after")
    def _one_scope(self) -> GridWorkerReach:
        if (self.grid is None) == (self.community is None):
            raise ValueError("a grid worker's channel names either a grid or a community")
        if not self.channels():
            raise ValueError("a grid worker's channel needs a webhook, robot or email")
        return self


#: Days of a shift.
SHIFT_DAYS = {"daily": 1, "weekly": 7}


class Rotation(_Strict):
    """Who is on call for a unit (code prefix).

    ``daily`` or ``weekly``: the people take shifts in turn, handing over at the
    ``handover`` time of day (local time, the on-call file's ``timezone``), the first
    shift starting at ``start``. ``always``: every one of them is on call at every
    moment (the "cloud seal" bound to the grid worker's, the secretary's and the
    director's phones around the clock). A unit may have several rotations: all of
    them are paged together.
    """

    unit: str = Field(pattern=CODE_PREFIX)
    shift: Literal["daily", "weekly", "always"] = "daily"
    start: AwareDatetime | date | None = Field(
        default=None,
        description="When the first person's first shift begins: a time with its offset, "
        "or a (local) day, whose shift begins at the handover time; required for daily "
        "and weekly shifts",
    )
    handover: time | None = Field(
        default=None,
        description="Local time of day the shift changes hands (08:00); default: the "
        "local time of ``start`` (midnight when ``start`` is a day)",
    )
    people: tuple[Person, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _start_for_turns(self) -> Rotation:
        if self.shift != "always" and self.start is None:
            raise ValueError(f"a {self.shift} rotation needs a start (its first shift)")
        if self.handover is not None and self.handover.tzinfo is not None:
            raise ValueError("handover is a local time of day (08:00), without an offset")
        return self

    def on_call(self, at: datetime, zone: ZoneInfo) -> tuple[Person, ...]:
        """Who is on call at ``at``: the person on shift, or everybody (``always``)."""
        if self.shift == "always":
            return self.people
        return (self.people[self.shift_number(at, zone) % len(self.people)],)

    def shift_number(self, at: datetime, zone: ZoneInfo) -> int:
        """How many handovers have happened by ``at`` (0 before the first shift ends).

        The handover is at the same local time every day, in ``zone``, whatever the
        offset of that day (summer time included).
        """
        first = self._first_shift(zone)
        if at < first:
            return 0
        handover = self._handover(zone)
        day = at.astimezone(zone).date()
        if at < datetime.combine(day, handover, zone):
            day -= timedelta(days=1)  # before today's handover: yesterday's shift
        days = (day - first.astimezone(zone).date()).days
        return max(0, days) // SHIFT_DAYS[self.shift]

    def _first_shift(self, zone: ZoneInfo) -> datetime:
        if isinstance(self.start, datetime):
            return self.start
        assert self.start is not None  # checked by the validator for daily/weekly
        return datetime.combine(self.start, self._handover(zone), zone)

    def _handover(self, zone: ZoneInfo) -> time:
        if self.handover is not None:
            return self.handover
        if isinstance(self.start, datetime):
            return self.start.astimezone(zone).time().replace(tzinfo=None)
        return time()


class Step(_Strict):
    """Notify a level's on-call this long after the alert fired, if still unacknowledged."""

    level: Level | Literal["grid"] = Field(
        description="A level of the hierarchy, or `grid`: the worker of the alert's grid "
        "(the first step only)"
    )
    after_minutes: float = Field(ge=0)


#: The step that pages the worker of an alert's grid.
GRID_STEP: Final = "grid"


class Policy(_Strict):
    """Escalation for one severity: steps up the hierarchy and reminder interval.

    A policy may start with a ``grid`` step: an alert about a place in a grid whose
    worker can be reached pages that worker first and the following steps after their
    delays. Any other alert skips the grid step, and every later step comes as many
    minutes earlier as the first of them followed it (the ladder of an alert without a
    grid is that of a policy without the grid step).
    """

    steps: tuple[Step, ...] = Field(min_length=1)
    repeat_minutes: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _grid_first(self) -> Policy:
        grids = [i for i, step in enumerate(self.steps) if step.level == GRID_STEP]
        if grids and grids != [0]:
            raise ValueError("only the first step may be the grid worker's (level: grid)")
        if grids and len(self.steps) == 1:
            raise ValueError("a grid step is followed by the community's (or a higher) step")
        return self

    def ladder(self, grid_reached: bool) -> Policy:
        """The steps an alert follows: all of them when its grid worker is reached, else
        those after the grid step, moved earlier by the first one's delay."""
        if grid_reached or self.steps[0].level != GRID_STEP:
            return self
        lead = self.steps[1].after_minutes
        steps = tuple(
            Step(level=s.level, after_minutes=max(0.0, s.after_minutes - lead))
            for s in self.steps[1:]
        )
        return Policy(steps=steps, repeat_minutes=self.repeat_minutes)


#: Minutes the grid worker has (by default) before the community's on-call is paged too.
GRID_LEAD_MINUTES = {Severity.CRITICAL: 5.0, Severity.WARNING: 15.0, Severity.INFO: 60.0}


def _default_policies() -> dict[Severity, Policy]:
    ladder = (Level.COMMUNITY, Level.STREET, Level.DISTRICT, Level.CITY)
    delays = {
        Severity.CRITICAL: ((0, 5, 15, 30), 10),
        Severity.WARNING: ((0, 30, 120, 480), 60),
        Severity.INFO: ((0,), 1440),
    }
    policies: dict[Severity, Policy] = {}
    for severity, (minutes, repeat) in delays.items():
        lead = GRID_LEAD_MINUTES[severity]
        steps = [Step(level=GRID_STEP, after_minutes=0)]
        steps += [
            Step(level=lv, after_minutes=m + lead)
            for lv, m in zip(ladder[: len(minutes)], minutes, strict=True)
        ]
        policies[severity] = Policy(steps=tuple(steps), repeat_minutes=repeat)
    return policies


class Smtp(_Strict):
    """The mail server used for the email channel."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "zhibao@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class OnCall(_Strict):
    """Rotations, escalation policies and catch-all receivers."""

    smtp: Smtp = Smtp()

    rotations: tuple[Rotation, ...] = ()
    escalation: dict[Severity, Policy] = Field(default_factory=_default_policies)
    webhooks: tuple[HttpUrl, ...] = Field(
        default=(), description="Alertmanager-format receivers notified of every alert"
    )
    grid_workers: tuple[GridWorkerReach, ...] = Field(
        default=(),
        description="How grid workers are reached: per grid, or per community for its "
        "grids without an entry of their own (who the worker is, the places registry says)",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="The time zone of the rotations' handover times and start days",
    )
    robot_messages_per_minute: int = Field(
        default=20,
        ge=1,
        le=600,
        description="Messages a chat robot (DingTalk, WeCom, Feishu) is sent a minute at "
        "most; its due alerts are packed into few messages, and what does not fit into "
        "this minute waits for the next",
    )
    group_wait_seconds: float = Field(
        default=0,
        ge=0,
        le=600,
        description="Hold a new notification this long so alerts of the same unit and "
        "rule raised meanwhile go out with it as one message (chat-bot rate limits)",
    )

    def secret_for(self, channel: str, url: str) -> str | None:
        """The signing secret of the robot at ``url`` (looked up when sending, never stored)."""
        robot = self._robot(channel, url, lambda r: r.secret is not None)
        return robot.secret.get_secret_value() if robot and robot.secret else None

    def robot_limit(self, channel: str, url: str) -> int:
        """Messages a minute the robot at ``url`` is sent at most."""
        robot = self._robot(channel, url, lambda r: r.per_minute is not None)
        if robot is not None and robot.per_minute is not None:
            return robot.per_minute
        return self.robot_messages_per_minute

    def _robot(self, channel: str, url: str, wanted: Callable[[Robot], bool]) -> Robot | None:
        """The first robot at ``url`` on ``channel`` (among everybody's) that is ``wanted``."""
        reaches: list[Reach] = [p for rotation in self.rotations for p in rotation.people]
        for reach in [*reaches, *self.grid_workers]:
            robot = getattr(reach, channel, None)
            if isinstance(robot, Robot) and str(robot.url) == url and wanted(robot):
                return robot
        return None

    def grid_channels(self, grid: str) -> list[tuple[str, str]]:
        """(channel, target) pairs the worker of ``grid`` is reached on: the grid's own
        entries, else its community's; none when neither is configured."""
        own = [r for r in self.grid_workers if r.grid == grid]
        chosen = own or [r for r in self.grid_workers if r.community == grid[:12]]
        return list(dict.fromkeys(pair for reach in chosen for pair in reach.channels()))

    def policy_for(self, severity: str, grid: str | None) -> Policy:
        """The escalation an alert of ``severity`` follows; ``grid``: the grid its place
        lies in (the grid worker first when they can be reached)."""
        policy = self.escalation[Severity(severity)]
        return policy.ladder(grid is not None and bool(self.grid_channels(grid)))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    def people_for(self, unit: str, at: datetime) -> tuple[Person, ...]:
        """Everybody on call for ``unit`` at ``at``: those of its own rotations, else of
        the nearest ancestor's; each person once, in the order of the file.

        A community without a rota of its own is covered by its street's duty
        officer rather than by nobody.
        """
        zone = ZoneInfo(self.timezone)
        for code in _self_and_ancestors(unit):
            matching = [r for r in self.rotations if r.unit == code]
            if matching:
                found = (person for r in matching for person in r.on_call(at, zone))
                return tuple(dict.fromkeys(found))
        return ()

    def person_for(self, unit: str, at: datetime) -> Person | None:
        """The first of :meth:`people_for` (None when nobody covers ``unit``)."""
        people = self.people_for(unit, at)
        return people[0] if people else None


def _self_and_ancestors(unit: str) -> list[str]:
    """``unit`` and the codes above it, nearest first (codes nest by prefix)."""
    return list(ancestors(unit))
