"""A unit's figures for one day, assembled from its counters, and the risk rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from zhibao_aggregator.domain import metrics as m


class RiskLevel(StrEnum):
    """Risk zoning (分区分级)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class RiskRule:
    """Risk from the new confirmed cases of the last ``window_days`` days (the day included).

    low: fewer than ``medium_at`` (by default: none); medium: at least
    ``medium_at``; high: at least ``high_at``. Modelled on the 2020 national
    zoning rule (low = no new confirmed case for 14 days), with the case
    thresholds configurable (``ZHIBAO_RISK_WINDOW_DAYS``,
    ``ZHIBAO_RISK_MEDIUM_AT``, ``ZHIBAO_RISK_HIGH_AT``).
    """

    window_days: int = 14
    medium_at: int = 1
    high_at: int = 10

    def level(self, confirmed_in_window: int) -> RiskLevel:
        """The risk level for a number of new confirmed cases in the window."""
        if confirmed_in_window >= self.high_at:
            return RiskLevel.HIGH
        if confirmed_in_window >= self.medium_at:
            return RiskLevel.MEDIUM
        return RiskLevel.LOW


@dataclass(frozen=True)
class CounterSnapshot:
    """What storage read for one unit and day (see ``storage.queries``)."""

    flows: dict[str, int]
    sums: dict[str, int]
    in_isolation_day_before: int
    last_new_confirmed: date | None
    confirmed_in_window: int
    communities_expected: int


def figures(
    day: date, snap: CounterSnapshot, rule: RiskRule, reports_due: datetime | None = None
) -> dict[str, int | str | None]:
    """All metrics of a unit for a day, as a flat mapping (JSON and report rows).

    ``reports_due`` is the deadline of the day's reports when it has not passed
    yet: missing reports are then pending, not overdue.
    """
    out: dict[str, int | str | None] = {name: snap.flows.get(name, 0) for name in m.FLOWS}
    for name in m.STOCKS:
        out[name] = snap.sums.get(name, 0)
    for name, flow in m.CUMULATIVE_OF.items():
        out[name] = snap.sums.get(flow, 0)
    checked = snap.flows.get(m.ISOLATION_CHECKED_DUE, 0)
    out["isolation_checks_missed"] = max(0, snap.in_isolation_day_before - checked)
    reported = snap.flows.get(m.REPORTS_RECEIVED, 0)
    out["reports_expected"] = snap.communities_expected
    out["reports_missing"] = max(0, snap.communities_expected - reported)
    out["reports_overdue"] = 0 if reports_due else out["reports_missing"]
    out["reports_due_at"] = reports_due.isoformat() if reports_due else None
    last = snap.last_new_confirmed
    out["last_new_confirmed"] = last.isoformat() if last else None
    out["days_since_last_new_confirmed"] = (day - last).days if last else None
    out["confirmed_in_risk_window"] = snap.confirmed_in_window
    out["risk_level"] = rule.level(snap.confirmed_in_window).value
    return out
