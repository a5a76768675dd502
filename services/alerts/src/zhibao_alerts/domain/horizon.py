"""The paging horizon: history is recorded, only what is still actionable is paged.

A fresh alerts database (a new deployment, a rebuild from the stream) reads the whole
event history. An alert raised from events is paged only when the system received
those events recently: when the newest of them reached intake more than ``hours``
before the alert is raised, it is history, recorded as ``expired`` and paged to
nobody. Late data that has just arrived (a phone back online after days) is news and
is paged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PageHorizon:
    """How long after intake received its events an alert is still paged."""

    hours: float

    def passed(self, received: datetime, now: datetime) -> bool:
        """True when events received at ``received`` are history at ``now``."""
        return now - received > timedelta(hours=self.hours)
