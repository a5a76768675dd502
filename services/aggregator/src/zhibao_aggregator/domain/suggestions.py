"""Suggestions to the command centre: raise or lower a unit's declared response level (pure).

A suggestion is a flag on the rollup, never a declaration: only the command centre
declares levels (``POST /v1/levels`` of the response service).

The computed risk and the declared levels compare through this mapping:

====================  ===========================
computed risk          declared level
====================  ===========================
high                   red (I) or orange (II)
medium                 yellow (III)
low                    blue (IV) or none
====================  ===========================

* ``raise``: the computed risk is above what the declared level stands for (no
  declaration counts as low);
* ``lower``: a level is declared and either the computed risk is below what it stands for
  (red or orange while medium or low, yellow while low), or the unit has gone the whole
  risk window (14 days) without a new confirmed case, which also lifts blue;
* otherwise none.
"""

from __future__ import annotations

from enum import StrEnum

from zhibao_aggregator.domain.risk import RiskLevel

_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2}
#: The computed risk each declared level stands for.
DECLARED_RISK: dict[str, RiskLevel] = {
    "red": RiskLevel.HIGH,
    "orange": RiskLevel.HIGH,
    "yellow": RiskLevel.MEDIUM,
    "blue": RiskLevel.LOW,
}


class Suggestion(StrEnum):
    """What the command centre is told to consider."""

    RAISE = "raise"
    LOWER = "lower"


def suggest(risk: RiskLevel, declared: str | None, confirmed_in_window: int) -> Suggestion | None:
    """The suggestion for a unit with computed ``risk`` and ``declared`` level (None: none)."""
    stands_for = DECLARED_RISK.get(declared, RiskLevel.LOW) if declared else RiskLevel.LOW
    if _RISK_RANK[risk] > _RISK_RANK[stands_for]:
        return Suggestion.RAISE
    if declared is None:
        return None
    if _RISK_RANK[risk] < _RISK_RANK[stands_for] or confirmed_in_window == 0:
        return Suggestion.LOWER
    return None
