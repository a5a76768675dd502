"""The simulator's parameters (all rates are per simulated day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

#: What is simulated by default: every community of the sample city (银川市, 323 communities).
DEFAULT_AREA = "6401"
#: The default outbreak site: 悦湖社区, whose first compound is the seed's pilot site 未来城.
DEFAULT_OUTBREAK_COMMUNITY = "640106001002"
#: The second outbreak, in another district: 兴和社区 of Xingqing (20,585 residents).
DEFAULT_SECOND_OUTBREAK_COMMUNITY = "640104006003"
#: The default volume: ≈ 1,600 screenings a day over the city's 2.65 M residents (see
#: ``SimulationConfig``), what the single-district demo sent before and ``zhibao up``
#: absorbs on 2 cores with room to spare.
DEFAULT_SCALE = 0.001
#: The community that stops reporting in the last days (silence alerts).
DEFAULT_SILENT_COMMUNITY = "640106005009"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Same config (and seed) → the same events, byte for byte.

    ``scale`` shrinks the volume of every community alike: at 1.0 each resident is
    screened ``screenings_per_resident`` times a day (≈ 1.6 million screenings a day
    for the whole sample city, 340,000 for Jinfeng); the default 0.001 gives ≈ 1,600
    a day for the city (from ≈ 0.5 in a village of 800 to ≈ 21 in a community of
    35,000), and every community still closes every day with its daily report.

    ``area`` is the unit whose communities are simulated: the city by default, a
    district or a street for a smaller run (an outbreak site outside it is left out).
    With ``outbreak``, a building outbreak starts in ``outbreak_community`` on
    ``outbreak_start`` and a second one in ``second_outbreak_community`` (another
    district) ``second_outbreak_after`` days later, each with its own response loop.
    """

    seed: int = 1
    days: int = 14
    start: date | None = None  # first simulated day; default: the last day is today
    scale: float = DEFAULT_SCALE
    area: str = DEFAULT_AREA
    communities: tuple[str, ...] | None = None  # restrict to these (default: the area's)
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
    outbreak_day: int | None = None  # day index; default: both outbreaks' cases within the run
    second_outbreak_community: str | None = DEFAULT_SECOND_OUTBREAK_COMMUNITY
    second_outbreak_after: int = 3  # days after the first outbreak
    until: datetime | None = None  # nothing later than this is generated (e.g. now)
    timezone: str = "Asia/Shanghai"
    # The response loop (needs ``outbreak``): the command centre declares a level for each
    # outbreak community, pushes companion-verification tasks down one day, communities
    # report the results back through intake, the level is lifted after a quiet spell.
    loop: bool = False
    level: str = "red"  # the level declared the evening the outbreak's first cases are confirmed
    companions_per_resident: float = 1.0  # per outbreak, times population × ``scale``
    companion_deadline_hours: int = 24
    late_task_share: float = 0.15  # of the tasks done: done after their deadline
    unreachable_share: float = 0.05
    transferred_share: float = 0.03  # the person lives elsewhere: moved to another community
    unfinished_share: float = 0.02  # no result within the run
    declared_open_share: float = 0.2  # of the level's own tasks: still open when it is lifted
    quiet_days_to_lift: int = 14  # lifted after this many whole days without a new case
    # Residents who need help: every community's key-person register (a share of its
    # residents, whatever ``scale``) reported on the first day, a few joining or leaving
    # later; their needs, most in an outbreak community while it is restricted (red), most
    # of all in the sealed compound (the epidemic point). With ``loop`` the community
    # fulfils them through task results, some late, a few not within the run.
    key_person_scale: float = 0.002  # of the residents (a real register holds ≈ 3 %)
    key_person_later_share: float = 0.05  # of the key persons: registered on a later day
    key_person_removed_share: float = 0.03  # … removed from one group on a later day
    need_rate: float = 0.01  # needs per key person and day
    red_need_factor: float = 8.0  # … in an outbreak community while it is restricted
    sealed_need_factor: float = 30.0  # … in the outbreak's sealed compound
    urgent_share: float = 0.1  # of the needs (medical needs of dialysis patients: half)
    late_need_share: float = 0.15  # of the needs met: after their limit
    unmet_need_share: float = 0.05  # no result within the run
    label_share: float = 0.05  # events naming the home by its labels instead of its id

    @property
    def zone(self) -> ZoneInfo:
        """The city's time zone (its day boundaries)."""
        return ZoneInfo(self.timezone)

    @property
    def first_day(self) -> date:
        """The first simulated day."""
        if self.start is not None:
            return self.start
        return datetime.now(self.zone).date() - timedelta(days=self.days - 1)

    @property
    def outbreak_start(self) -> int:
        """The day index on which the (first) outbreak's first fevers appear: by default
        5 days before the end, less the second outbreak's delay when there is one."""
        if self.outbreak_day is not None:
            return self.outbreak_day
        later = self.second_outbreak_after if self.second_outbreak_community else 0
        return max(0, self.days - 5 - later)

    @property
    def outbreak_sites(self) -> tuple[tuple[str, int], ...]:
        """Every outbreak as (community, day index of its first fevers), first one first."""
        sites = [(self.outbreak_community, self.outbreak_start)]
        second = self.second_outbreak_community
        if second is not None and second != self.outbreak_community:
            sites.append((second, self.outbreak_start + self.second_outbreak_after))
        return tuple(sites)

    @property
    def companion_day(self) -> int:
        """The day index on which the (first) outbreak's companion tasks arrive."""
        return companion_day(self.outbreak_start)


def companion_day(outbreak_start: int) -> int:
    """The day index on which an outbreak's companion-verification tasks arrive."""
    return outbreak_start + 3
