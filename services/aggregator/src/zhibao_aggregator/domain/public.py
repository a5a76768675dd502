"""What a public release shows of the units' figures (pure).

A release is one day's public figures, computed once and then frozen. It
chains to the previous release the way health bulletins do:

* **Event-day flows** (screenings, fevers, new suspected, new asymptomatic,
  isolations started): what happened that day.
* **Newly reported** confirmed cases (``new_confirmed``) and newly closed ones
  (``new_closed``: recovered, died or no longer confirmed): the change of the
  running totals since the previous release, so late reports count in the
  release that first sees them, as "新增" in a bulletin does.
* **Stocks**: ``cumulative_confirmed`` and ``current_confirmed``.

Every count is suppressed per release over the whole published hierarchy
(:mod:`zhibao_aggregator.domain.suppression`). Stocks could still give a
suppressed count back by differencing two releases, so a unit's stocks are
shown only while *every* newly reported and newly closed count of that unit,
in every release so far, was shown: then its cumulative is the sum of its
published new counts and its current count that sum minus its published
closed counts, and showing them adds nothing to what is already public. A
unit with one suppressed new count never shows its stocks again.

Days without a new case and the risk level are likewise functions of the
published figures alone (a suppressed count is known to be at least 1, since
zeros are always shown), so they cannot pin a suppressed count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.risk import MEDIUM_OR_HIGH, UNDISCLOSED, ZoningRule
from zhibao_aggregator.domain.suppression import CountTable, suppress
from zhibao_shared.events import Classification

#: Counts of what happened on the release's day (event day).
EVENT_DAY_COUNTS: tuple[str, ...] = (
    m.SCREENINGS,
    m.FEVERS,
    m.new_metric(Classification.SUSPECTED),
    m.new_metric(Classification.ASYMPTOMATIC),
    m.ISOLATION_STARTED,
)
NEW_CONFIRMED = "new_confirmed"
NEW_CLOSED = "new_closed"
#: Counts newly reported since the previous release.
REPORTED_COUNTS: tuple[str, ...] = (NEW_CONFIRMED, NEW_CLOSED)
CUMULATIVE = "cumulative_confirmed"
CURRENT = "current_confirmed"
#: Stocks, shown only for units whose reported counts were never suppressed.
STOCKS: tuple[str, ...] = (CUMULATIVE, CURRENT)
PUBLIC_COUNTS: tuple[str, ...] = (*EVENT_DAY_COUNTS, *REPORTED_COUNTS, *STOCKS)

__all__ = ["MEDIUM_OR_HIGH", "UNDISCLOSED", "Release", "ReleaseRules", "UnitState"]

Figures = Mapping[str, int | float | str | None]


@dataclass(frozen=True)
class UnitState:
    """What a release carries over to the next one for one unit (kept, never shown).

    ``window`` holds the unit's published new confirmed counts of the last
    releases (``None`` where suppressed), newest last.
    """

    cumulative: int = 0
    closed: int = 0
    clean: bool = True
    last_new: date | None = None
    window: tuple[int | None, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The state as JSON-ready data."""
        return {
            "cumulative": self.cumulative,
            "closed": self.closed,
            "clean": self.clean,
            "last_new": self.last_new.isoformat() if self.last_new else None,
            "window": list(self.window),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitState:
        """The state from :meth:`as_json`'s data."""
        last = data["last_new"]
        return cls(
            data["cumulative"],
            data["closed"],
            data["clean"],
            date.fromisoformat(last) if last else None,
            tuple(data["window"]),
        )


@dataclass(frozen=True)
class Release:
    """One day's public figures per unit, and the state the next release starts from."""

    day: date
    units: dict[str, dict[str, Any]]
    state: dict[str, UnitState]


@dataclass(frozen=True)
class ReleaseRules:
    """How releases are made: the small-cell threshold and the risk rule."""

    threshold: int
    risk: ZoningRule


def _int(figures: Figures, metric: str) -> int:
    value = figures.get(metric)
    return value if isinstance(value, int) else 0


def _counts(
    figures: Mapping[str, Figures], previous: Mapping[str, UnitState]
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per count, every unit's value in this release (unsuppressed); and its closed total."""
    counts = {c: {u: _int(f, c) for u, f in figures.items()} for c in EVENT_DAY_COUNTS}
    counts[CUMULATIVE] = {u: _int(f, CUMULATIVE) for u, f in figures.items()}
    counts[CURRENT] = {u: _int(f, CURRENT) for u, f in figures.items()}
    closed = {u: max(0, counts[CUMULATIVE][u] - counts[CURRENT][u]) for u in figures}
    before = {u: previous.get(u, UnitState()) for u in figures}
    counts[NEW_CONFIRMED] = {
        u: max(0, counts[CUMULATIVE][u] - before[u].cumulative) for u in figures
    }
    counts[NEW_CLOSED] = {u: max(0, closed[u] - before[u].closed) for u in figures}
    return counts, closed


def public_level(
    window: tuple[int | None, ...], rule: ZoningRule, cumulative: int | None = None
) -> str:
    """The risk level the published figures allow: the window's published new counts
    (``None``: suppressed) and the published cumulative (``None``: not shown); see each
    rule's ``public_level``."""
    return rule.public_level(window, cumulative)


def make_release(
    day: date,
    figures: Mapping[str, Figures],
    groups: Mapping[str, tuple[str, ...]],
    previous: Mapping[str, UnitState] | None,
    rules: ReleaseRules,
) -> Release:
    """The release of ``day`` from every public unit's true figures and the previous release.

    ``previous`` is None for the first release: everything counted until then
    is newly reported in it, and days without a new case count from the last
    day with a new confirmed case.
    """
    before = _carried_over(previous, groups) if previous is not None else {}
    counts, closed = _counts(figures, before)
    hidden = {
        c: suppress(CountTable(counts[c], groups), rules.threshold)
        for c in (*EVENT_DAY_COUNTS, *REPORTED_COUNTS)
    }
    units: dict[str, dict[str, Any]] = {}
    state: dict[str, UnitState] = {}
    for unit, own in figures.items():
        old = before.get(unit, UnitState())
        # a closed total that went down (someone confirmed again), or more current cases
        # than were ever reported here (a person confirmed elsewhere, reported again here),
        # is no published flow
        clean = (
            old.clean
            and closed[unit] >= old.closed
            and counts[CURRENT][unit] <= counts[CUMULATIVE][unit]
            and not any(unit in hidden[c] for c in REPORTED_COUNTS)
        )
        shown: dict[str, Any] = {
            count: _shown(
                counts[count][unit], unit in hidden[count] if count in hidden else not clean
            )
            for count in PUBLIC_COUNTS
        }
        last_new = day if counts[NEW_CONFIRMED][unit] > 0 else old.last_new
        if previous is None and isinstance(own.get("last_new_confirmed"), str):
            last_new = date.fromisoformat(str(own["last_new_confirmed"]))
        window = (*old.window, shown[NEW_CONFIRMED]["value"])[-rules.risk.window_days :]
        shown["days_without_new_case"] = (day - last_new).days if last_new else None
        shown["risk_level"] = public_level(window, rules.risk, shown[CUMULATIVE]["value"])
        units[unit] = shown
        state[unit] = UnitState(counts[CUMULATIVE][unit], closed[unit], clean, last_new, window)
    return Release(day, units, state)


def _carried_over(
    previous: Mapping[str, UnitState], groups: Mapping[str, tuple[str, ...]]
) -> dict[str, UnitState]:
    """The previous state, with that of a parent new to the chain (such as a province
    added above the city) made from its children's, deepest first.

    Starting it from nothing would count its whole history as newly reported, so
    it would no longer be the sum of its children, which suppression relies on.
    """
    state = dict(previous)
    for parent in sorted(groups, key=len, reverse=True):
        children = [state.get(c) for c in groups[parent]]
        if parent not in state and children and None not in children:
            state[parent] = _sum_of([c for c in children if c is not None])
    return state


def _sum_of(children: list[UnitState]) -> UnitState:
    """A parent's state from its children's: what their published figures add up to."""
    days = min(len(c.window) for c in children)
    window = tuple(
        None if None in column else sum(v for v in column if v is not None)
        for column in zip(*(c.window[len(c.window) - days :] for c in children), strict=True)
    )
    last = [c.last_new for c in children if c.last_new is not None]
    return UnitState(
        sum(c.cumulative for c in children),
        sum(c.closed for c in children),
        all(c.clean for c in children),
        max(last, default=None),
        window,
    )


def _shown(value: int, suppressed: bool) -> dict[str, Any]:
    return {"value": None if suppressed else value, "suppressed": suppressed}
