"""The rollups the aggregator serves, compared with the simulator's ground truth.

Only per-event counters are compared (every event adds exactly one to each
that applies): a lost event shows as a shortfall, a double-counted one as an
excess, at the community and at every level above it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

import httpx

from zhibao_client.simulator.truth import DayTotals, GroundTruth
from zhibao_shared.hierarchy import load_registry

TOP = "64"  # the province: its rollup, then the children of every unit above a community
SITES = ("gate", "building", "self_report")
#: Aggregator figure → how to read it from the ground truth of one community and day.
METRICS = (
    "events",
    "screenings",
    "fevers",
    "travel_flagged",
    *(f"screenings_{site}" for site in SITES),
    "isolation_checks",
    "isolation_breaches",
)

Key = tuple[str, date, str]  # unit, day, metric


@dataclass(frozen=True)
class Mismatch:
    """A figure that differs from the truth."""

    unit: str
    day: date
    metric: str
    expected: int
    actual: int


def truth_figures(totals: DayTotals) -> dict[str, int]:
    """The compared figures of one community and day, from the ground truth."""
    return {
        "events": totals.events,
        "screenings": totals.screenings,
        "fevers": totals.fevers,
        "travel_flagged": totals.travel_flags,
        **{f"screenings_{site}": totals.by_site[site] for site in SITES},
        "isolation_checks": totals.isolation["check"],
        "isolation_breaches": totals.isolation["breach"],
    }


def expected_rollups(truth: GroundTruth) -> Counter[Key]:
    """Every unit's compared figures per day: communities summed up the hierarchy."""
    registry = load_registry()
    expected: Counter[Key] = Counter()
    for (community, day), totals in truth.days.items():
        for metric, value in truth_figures(totals).items():
            for unit in registry.path(community):
                expected[(unit.code, day, metric)] += value
    return expected


def served_rollups(aggregator: str, token: str, days: list[date]) -> dict[Key, int]:
    """The compared figures of every unit (province down to communities) and day."""
    registry = load_registry()
    parents = [u.code for u in registry if u.level.value != "community"]
    served: dict[Key, int] = {}
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=aggregator, headers=headers, timeout=30) as http:
        for day in days:
            top = http.get(f"/v1/units/{TOP}/rollup", params={"date": str(day)})
            top.raise_for_status()
            _keep(served, TOP, day, top.json()["figures"])
            for parent in parents:
                answer = http.get(f"/v1/units/{parent}/children", params={"date": str(day)})
                answer.raise_for_status()
                for child in answer.json()["children"]:
                    _keep(served, child["code"], day, child["figures"])
    return served


def _keep(served: dict[Key, int], unit: str, day: date, figures: dict[str, object]) -> None:
    for metric in METRICS:
        value = figures.get(metric, 0)
        served[(unit, day, metric)] = int(value) if isinstance(value, int) else 0


def compare(expected: Counter[Key], served: dict[Key, int]) -> list[Mismatch]:
    """Every figure that differs (a unit/day the truth does not know must be zero)."""
    keys = set(expected) | set(served)
    return [
        Mismatch(unit, day, metric, expected.get((unit, day, metric), 0), served.get(key, 0))
        for key in sorted(keys)
        for unit, day, metric in [key]
        if expected.get(key, 0) != served.get(key, 0)
    ]


def lost_and_double(mismatches: list[Mismatch]) -> tuple[int, int]:
    """Events missing from, and counted twice in, the communities' ``events`` counters."""
    communities = [m for m in mismatches if m.metric == "events" and len(m.unit) == 12]
    lost = sum(max(0, m.expected - m.actual) for m in communities)
    double = sum(max(0, m.actual - m.expected) for m in communities)
    return lost, double
