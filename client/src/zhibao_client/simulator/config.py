"""The simulator's parameters (all rates are per simulated day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

#: The default outbreak site: 悦湖社区, whose first compound is the seed's pilot site 未来城.
DEFAULT_OUTBREAK_COMMUNITY = "640106001002"
#: The community that stops reporting in the last days (silence alerts).
DEFAULT_SILENT_COMMUNITY = "640106005009"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Same config (and seed) → the same events, byte for byte.

    ``scale`` shrinks the volume: at 1.0 each resident is screened
    ``screenings_per_resident`` times a day (≈ 340,000 screenings a day for
    the sample district); the default 0.005 gives ≈ 1,700.
    """

    seed: int = 1
    days: int = 14
    start: date | None = None  # first simulated day; default: the last day is today
    scale: float = 0.005
    district: str = "640106"
    communities: tuple[str, ...] | None = None  # restrict to these (default: the district's)
    screenings_per_resident: float = 0.6
    fever_rate: float = 0.003
    travel_rate: float = 0.01
    suspected_per_100k: float = 0.4
    confirmed_share: float = 0.1  # of suspected; the rest are excluded
    contacts_per_case: tuple[int, int] = (3, 6)
    isolation_days: int = 14
    missed_check_rate: float = 0.05
    late_report_rate: float = 0.06
    silent_community: str | None = DEFAULT_SILENT_COMMUNITY
    silent_days: int = 2  # the silent community sends nothing on the last N days
    outbreak: bool = False
    outbreak_community: str = DEFAULT_OUTBREAK_COMMUNITY
    outbreak_day: int | None = None  # day index; default: 5 days before the end
    until: datetime | None = None  # nothing later than this is generated (e.g. now)
    timezone: str = "Asia/Shanghai"
    # The response loop (needs ``outbreak``): the command centre declares a level for the
    # outbreak community, pushes companion-verification tasks down one day, communities
    # report the results back through intake, the level is lifted after a quiet spell.
    loop: bool = False
    level: str = "red"  # the level declared the evening the outbreak's first cases are confirmed
    companions_per_resident: float = 1.0  # times the district's population and ``scale``
    companion_deadline_hours: int = 24
    late_task_share: float = 0.15  # of the tasks done: done after their deadline
    unreachable_share: float = 0.05
    transferred_share: float = 0.03  # the person lives elsewhere: moved to another community
    unfinished_share: float = 0.02  # no result within the run
    declared_open_share: float = 0.2  # of the level's own tasks: still open when it is lifted
    quiet_days_to_lift: int = 14  # lifted after this many whole days without a new case

    @property
    def zone(self) -> ZoneInfo:
        """The district's time zone (its day boundaries)."""
        return ZoneInfo(self.timezone)

    @property
    def first_day(self) -> date:
        """The first simulated day."""
        if self.start is not None:
            return self.start
        return datetime.now(self.zone).date() - timedelta(days=self.days - 1)

    @property
    def outbreak_start(self) -> int:
        """The day index on which the outbreak's first fevers appear."""
        if self.outbreak_day is not None:
            return self.outbreak_day
        return max(0, self.days - 5)

    @property
    def companion_day(self) -> int:
        """The day index on which the companion-verification tasks arrive."""
        return self.outbreak_start + 3
