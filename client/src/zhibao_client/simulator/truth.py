"""Ground truth: what the simulator generated, counted at the moment it decided it.

The counts are kept by the model from its own decisions (not by re-reading
the events), so a test that counts the events independently checks both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

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


@dataclass
class GroundTruth:
    """Per community and day totals, plus the alerts the model meant to cause."""

    days: dict[tuple[str, date], DayTotals] = field(default_factory=dict)
    expected_alerts: list[ExpectedAlert] = field(default_factory=list)
    duplicates_delivered: int = 0

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
