"""The paging horizon: history is recorded, only what is still actionable is paged.

A fresh alerts database (a new deployment, a rebuild from the stream) reads the whole
event history. An alert raised from events is paged only while its day is recent:
once its day (district time) ended more than ``hours`` ago it is recorded as
``expired`` and nobody is paged for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class PageHorizon:
    """How long after its day ends an event-driven alert is still paged."""

    hours: float
    timezone: str

    def passed(self, day: date, now: datetime) -> bool:
        """True when ``day`` ended more than ``hours`` before ``now``."""
        ended = datetime.combine(day + timedelta(days=1), time(), ZoneInfo(self.timezone))
        return now - ended > timedelta(hours=self.hours)
