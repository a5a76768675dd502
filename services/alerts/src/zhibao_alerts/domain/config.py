"""Rules and on-call configuration (YAML), validated with pydantic.

A bad file is refused with the validation error; the caller keeps the
configuration it had (see ``zhibao_alerts.config_files``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    field_validator,
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

    def severity_for(self, kind: str) -> Severity:
        """The severity of an overdue task of ``kind``."""
        own = self.kinds.get(kind)
        return own.severity if own is not None and own.severity is not None else self.severity

    def pages_for(self, kind: str) -> bool:
        """Whether an overdue task of ``kind`` pages anyone."""
        own = self.kinds.get(kind)
        return own.page if own is not None and own.page is not None else self.page


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


class Person(_Strict):
    """Someone on call (staff, never residents) and how to reach them."""

    name: str
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


class Rotation(_Strict):
    """Who is on call for a unit (code prefix), taking shifts in turn."""

    unit: str = Field(pattern=CODE_PREFIX)
    shift: str = Field(default="daily", pattern=r"^(daily|weekly)$")
    start: AwareDatetime
    people: tuple[Person, ...] = Field(min_length=1)

    def on_call(self, at: datetime) -> Person:
        """The person on shift at ``at``."""
        length = timedelta(days=1 if self.shift == "daily" else 7)
        shifts = max(0, int((at - self.start) / length))
        return self.people[shifts % len(self.people)]


class Step(_Strict):
    """Notify a level's on-call this long after the alert fired, if still unacknowledged."""

    level: Level
    after_minutes: float = Field(ge=0)


class Policy(_Strict):
    """Escalation for one severity: steps up the hierarchy and reminder interval."""

    steps: tuple[Step, ...] = Field(min_length=1)
    repeat_minutes: float = Field(default=30, gt=0)


def _default_policies() -> dict[Severity, Policy]:
    ladder = (Level.COMMUNITY, Level.STREET, Level.DISTRICT, Level.CITY)
    return {
        Severity.CRITICAL: Policy(
            steps=tuple(
                Step(level=lv, after_minutes=m)
                for lv, m in zip(ladder, (0, 5, 15, 30), strict=True)
            ),
            repeat_minutes=10,
        ),
        Severity.WARNING: Policy(
            steps=tuple(
                Step(level=lv, after_minutes=m)
                for lv, m in zip(ladder, (0, 30, 120, 480), strict=True)
            ),
            repeat_minutes=60,
        ),
        Severity.INFO: Policy(
            steps=(Step(level=Level.COMMUNITY, after_minutes=0),), repeat_minutes=1440
        ),
    }


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
    group_wait_seconds: float = Field(
        default=0,
        ge=0,
        le=600,
        description="Hold a new notification this long so alerts of the same unit and "
        "rule raised meanwhile go out with it as one message (chat-bot rate limits)",
    )

    def secret_for(self, channel: str, url: str) -> str | None:
        """The signing secret of the robot at ``url`` (looked up when sending, never stored)."""
        for rotation in self.rotations:
            for person in rotation.people:
                robot = getattr(person, channel, None)
                if isinstance(robot, Robot) and str(robot.url) == url and robot.secret:
                    return robot.secret.get_secret_value()
        return None

    def person_for(self, unit: str, at: datetime) -> Person | None:
        """The on-call person for ``unit``: its own rotation's, else the nearest ancestor's.

        A community without a rota of its own is covered by its street's duty
        officer rather than by nobody.
        """
        for code in _self_and_ancestors(unit):
            matching = [r for r in self.rotations if r.unit == code]
            if matching:
                return matching[0].on_call(at)
        return None


def _self_and_ancestors(unit: str) -> list[str]:
    """``unit`` and the codes above it, nearest first (codes nest by prefix)."""
    return list(ancestors(unit))
