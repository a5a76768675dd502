"""Days in the district's time zone: which day an event counts on, and lateness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Calendar:
    """The district's calendar (Asia/Shanghai by default)."""

    zone: ZoneInfo

    @classmethod
    def named(cls, name: str) -> Calendar:
        """A calendar for an IANA time zone name."""
        return cls(ZoneInfo(name))

    def day(self, moment: datetime) -> date:
        """The local date of an aware datetime."""
        return moment.astimezone(self.zone).date()

    def start_of(self, day: date) -> datetime:
        """Local midnight at the start of ``day``."""
        return datetime.combine(day, time(0), tzinfo=self.zone)

    def report_on_time(self, day: date, received: datetime, due_after: timedelta) -> bool:
        """A daily report for ``day`` is on time when received by its deadline."""
        return received <= self.start_of(day) + due_after

    def today(self, now: datetime) -> date:
        """Today's local date."""
        return self.day(now)
