"""Generated release histories for the public-figure attack tests (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hypothesis import strategies as st

from zhibao_aggregator.domain.public import Release, ReleaseRules, UnitState, make_release
from zhibao_aggregator.domain.rollup import RiskRule

FIRST_DAY = date(2020, 2, 1)
RISK = RiskRule(window_days=3, medium_at=1, high_at=10)
RULES = ReleaseRules(5, RISK)


@dataclass(frozen=True)
class History:
    """A unit tree, each leaf's newly confirmed and closed cases per day, and the releases."""

    groups: dict[str, tuple[str, ...]]
    leaves: tuple[str, ...]
    new: list[dict[str, int]]
    releases: list[Release]

    def units(self) -> list[str]:
        """Every unit, parents first."""
        return ["r", *(c for children in self.groups.values() for c in children)]

    def total(self, values: dict[str, int], unit: str) -> int:
        """A unit's value: its own for a leaf, its children's sum for a parent."""
        if unit in self.groups:
            return sum(self.total(values, c) for c in self.groups[unit])
        return values.get(unit, 0)


@st.composite
def histories(
    draw: st.DrawFn,
    days: int = 4,
    leaf: st.SearchStrategy[int] | None = None,
    rules: ReleaseRules = RULES,
) -> History:
    """A two-level tree (root ``r``, up to 3 streets of up to 3 communities) over some days."""
    counts = st.one_of(st.integers(0, 3), st.integers(0, 9)) if leaf is None else leaf
    groups: dict[str, tuple[str, ...]] = {}
    leaves: list[str] = []
    streets = tuple(f"r.{n}" for n in range(draw(st.integers(1, 3))))
    groups["r"] = streets
    for street in streets:
        width = draw(st.integers(0, 3))
        if width:
            groups[street] = tuple(f"{street}.{n}" for n in range(width))
            leaves += groups[street]
        else:
            leaves.append(street)
    new = [{u: draw(counts) for u in leaves} for _ in range(draw(st.integers(1, days)))]
    closed_share = draw(st.integers(0, 2))
    releases: list[Release] = []
    cumulative = dict.fromkeys(leaves, 0)
    closed = dict.fromkeys(leaves, 0)
    state: dict[str, UnitState] | None = None
    history = History(groups, tuple(leaves), new, releases)
    for n, today in enumerate(new):
        for u in leaves:
            closed[u] += min(cumulative[u] - closed[u], closed_share * (n % 2))
            cumulative[u] += today[u]
        figures = {
            u: {
                "cumulative_confirmed": history.total(cumulative, u),
                "current_confirmed": history.total(cumulative, u) - history.total(closed, u),
            }
            for u in history.units()
        }
        made = make_release(FIRST_DAY + timedelta(days=n), figures, groups, state, rules)
        releases.append(made)
        state = made.state
    return history
