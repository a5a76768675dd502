"""A unit's figures for one day, assembled from its counters (the risk rules: ``risk``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.risk import RiskInputs, RiskLevel, RiskRule, ZoningRule
from zhibao_aggregator.domain.suggestions import suggest

__all__ = ["CounterSnapshot", "RiskLevel", "RiskRule", "UnitContext", "figures"]


@dataclass(frozen=True)
class CounterSnapshot:
    """What storage read for one unit and day (see ``storage.queries``)."""

    flows: dict[str, int]
    sums: dict[str, int]
    in_isolation_day_before: int
    last_new_confirmed: date | None
    confirmed_in_window: int
    communities_expected: int
    #: Places with a cluster in the risk window (read only when the rule needs them).
    clusters_in_window: int = 0


@dataclass(frozen=True)
class UnitContext:
    """What the rollup adds from outside the counters: the level declared for the unit
    (``None``: none) and its epidemic points' figures."""

    declared_level: str | None = None
    points: dict[str, int] | None = None


def figures(
    day: date,
    snap: CounterSnapshot,
    rule: ZoningRule,
    reports_due: datetime | None = None,
    context: UnitContext | None = None,
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
    inputs = RiskInputs(
        snap.confirmed_in_window, snap.sums.get(m.NEW_CONFIRMED, 0), snap.clusters_in_window > 0
    )
    risk = rule.assess(inputs)
    out["risk_level"] = risk.value
    out["risk_rule"] = rule.name
    out["clusters_in_risk_window"] = snap.clusters_in_window
    for metric in m.RELEASES_DUE:
        out[metric] = snap.flows.get(metric, 0)
    context = context or UnitContext()
    out["declared_level"] = context.declared_level
    suggestion = suggest(risk, context.declared_level, snap.confirmed_in_window)
    out["level_suggestion"] = suggestion.value if suggestion else None
    out |= context.points or {}
    return out
