"""Small-cell suppression of public-facing counts (pure).

A count from 1 to ``threshold - 1`` is a *small cell*: few enough people that
a neighbour could tell who they are. Public summaries show it as suppressed
(``null``). Suppressing small cells alone is not enough, because published
units nest and every parent is the sum of its children: a street's total
minus all but one of its communities gives the hidden one back. So, per count
(one metric on one day over every published unit), :func:`suppress` also
hides *complementary* cells until an attacker who knows every published
count, that parents are sums of their children and that zeros are never
hidden (so a hidden count is at least 1) can neither

* pin any hidden count to a single value (interval reasoning over all the
  sums at once: :func:`bounds`), nor
* derive a small total for the hidden children of a published parent (their
  sum, the parent minus the published children, is 0 or at least
  ``threshold``).

Complements are the smallest non-zero published children of the group that
discloses (least information lost), else its parent, else the smallest
non-zero published count anywhere; each round hides one more count, so it
ends. Zeros are always shown: they say nobody, which identifies nobody.

This works on one day's counts. Across days, running totals and stocks
change by the day's flows and would give suppressed flows back by
differencing; :mod:`zhibao_aggregator.domain.public` therefore shows a
unit's stocks only where they add up from its published flows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CountTable:
    """One count per published unit and how they nest (each parent = sum of its children).

    ``groups`` maps a parent to its children; every code in it must have a
    count in ``values``. Units without published children are leaves.
    """

    values: Mapping[str, int]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(v < 0 for v in self.values.values()):
            raise ValueError("counts are never negative")
        for parent, children in self.groups.items():
            missing = {parent, *children} - self.values.keys()
            if missing:
                raise ValueError(f"no count for {sorted(missing)}")


Bounds = dict[str, tuple[int, float]]


def small(value: int, threshold: int) -> bool:
    """True for a count that must not be shown: 1 to ``threshold - 1``."""
    return 0 < value < threshold


def bounds(table: CountTable, hidden: frozenset[str] | set[str]) -> Bounds:
    """What an attacker can infer of each count: (lowest, highest) value it may have.

    Published counts are exact; a hidden one starts as [1, ∞) and is narrowed
    through every parent-equals-sum-of-children relation until nothing
    changes (the units form a tree, so this ends).
    """
    low = {u: 1 if u in hidden else v for u, v in table.values.items()}
    high: dict[str, float] = {u: math.inf if u in hidden else v for u, v in table.values.items()}
    for _ in range(2 * len(table.values) + 2):  # a tree settles well within this
        changed = False
        for parent, children in sorted(table.groups.items()):
            changed |= _narrow(parent, children, low, high)
        if not changed:
            break
    return {u: (low[u], high[u]) for u in table.values}


def _narrow(
    parent: str, children: tuple[str, ...], low: dict[str, int], high: dict[str, float]
) -> bool:
    """Tighten one sum relation's bounds; True if any bound moved."""
    before = [(low[u], high[u]) for u in (parent, *children)]
    low[parent] = max(low[parent], sum(low[c] for c in children))
    high[parent] = min(high[parent], sum(high[c] for c in children))
    for child in children:
        others_low = sum(low[c] for c in children if c != child)
        others_high = sum(high[c] for c in children if c != child)
        if others_high < math.inf:
            low[child] = max(low[child], math.ceil(low[parent] - others_high))
        high[child] = min(high[child], high[parent] - others_low)
    return before != [(low[u], high[u]) for u in (parent, *children)]


def disclosing_group(table: CountTable, hidden: set[str], threshold: int) -> str | None:
    """The parent of the first group (by code) that gives a hidden count away, or None."""
    inferred = bounds(table, hidden)
    for parent, children in sorted(table.groups.items()):
        members = (parent, *children)
        if any(u in hidden and inferred[u][0] == inferred[u][1] for u in members):
            return parent
        if parent not in hidden:
            rest = table.values[parent] - sum(table.values[c] for c in children if c not in hidden)
            if small(rest, threshold):
                return parent
    return None


def _smallest_shown(table: CountTable, hidden: set[str], among: tuple[str, ...]) -> str | None:
    shown = [u for u in among if u not in hidden and table.values[u] > 0]
    return min(shown, key=lambda u: (table.values[u], u), default=None)


def complement(table: CountTable, hidden: set[str], parent: str) -> str | None:
    """The next count to hide for a disclosing group (None when nothing is left to hide)."""
    return (
        _smallest_shown(table, hidden, table.groups[parent])
        or _smallest_shown(table, hidden, (parent,))
        or _smallest_shown(table, hidden, tuple(table.values))
    )


def suppress(table: CountTable, threshold: int) -> frozenset[str]:
    """The counts to hide: every small cell, and complements until nothing is given away.

    ``threshold`` 1 hides nothing; 2 hides only ones; the default of the
    service is 5.
    """
    if threshold < 1:
        raise ValueError("the threshold is at least 1")
    hidden = {u for u, v in table.values.items() if small(v, threshold)}
    while (parent := disclosing_group(table, hidden, threshold)) is not None:
        extra = complement(table, hidden, parent)
        if extra is None:
            break
        hidden.add(extra)
    return frozenset(hidden)
