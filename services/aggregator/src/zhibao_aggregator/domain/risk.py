"""Risk zoning (分区分级): the rules that turn a unit's cases into low, medium or high (pure).

Two rules are available (``ZHIBAO_RISK_RULE``):

* ``national_2020`` (default): the State Council joint prevention and control
  mechanism's rule for counties of 17 February 2020 (国务院联防联控机制《关于科学防治精准
  施策分区分级做好新冠肺炎疫情防控工作的指导意见》):

  - **low**: no confirmed case, or no new confirmed case for 14 consecutive days;
  - **medium**: new confirmed cases within 14 days and at most 50 cumulative, or more
    than 50 cumulative without a cluster outbreak (聚集性疫情) within 14 days;
  - **high**: more than 50 cumulative and a cluster outbreak within 14 days.

  Operationally, "cumulative" is the unit's cumulative confirmed cases over all stored
  history (the events stream's retention), "within 14 days" is the last ``window_days``
  local days with the rollup's day included, and a **cluster** is at least
  ``cluster_min_cases`` (2) persons reported confirmed within the window with the same
  place: the same compound of one community, or, for cases reported without a compound,
  the same building label of one community.
* ``new_cases`` (the rule before): medium from ``medium_at`` (1) and high from
  ``high_at`` (10) new confirmed cases in the window.

Each rule also says what level a public release may show
(:meth:`NationalRule2020.public_level`): a function of the published counts alone, so
the level never narrows a suppressed count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Published risk level when a suppressed count (or an unpublished fact) leaves medium
#: and high both possible.
MEDIUM_OR_HIGH = "medium_or_high"
#: Published risk level when a suppressed count leaves every level possible.
UNDISCLOSED = "undisclosed"


class RiskLevel(StrEnum):
    """Risk zoning (分区分级)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class RiskInputs:
    """What the rules look at for one unit and day."""

    confirmed_in_window: int
    cumulative_confirmed: int = 0
    cluster_in_window: bool = False


@dataclass(frozen=True)
class RiskRule:
    """The ``new_cases`` rule: risk from the new confirmed cases of the window alone.

    low: fewer than ``medium_at`` (by default: none); medium: at least ``medium_at``;
    high: at least ``high_at``.
    """

    window_days: int = 14
    medium_at: int = 1
    high_at: int = 10
    name: str = "new_cases"

    def level(self, confirmed_in_window: int) -> RiskLevel:
        """The risk level for a number of new confirmed cases in the window."""
        if confirmed_in_window >= self.high_at:
            return RiskLevel.HIGH
        if confirmed_in_window >= self.medium_at:
            return RiskLevel.MEDIUM
        return RiskLevel.LOW

    def assess(self, inputs: RiskInputs) -> RiskLevel:
        """The unit's risk level."""
        return self.level(inputs.confirmed_in_window)

    def public_level(self, window: tuple[int | None, ...], cumulative: int | None) -> str:
        """The level the published new counts of the window allow (``None``: suppressed).

        A suppressed count is at least 1, so the window holds at least the shown counts
        plus one per suppressed one; the level is shown exactly when every value the
        suppressed counts could take gives the same level.
        """
        least = sum(v if v is not None else 1 for v in window)
        exact = all(v is not None for v in window)
        level = self.level(least)
        if exact or level is RiskLevel.HIGH:
            return level.value
        return MEDIUM_OR_HIGH if level is RiskLevel.MEDIUM else UNDISCLOSED


@dataclass(frozen=True)
class NationalRule2020:
    """The national zoning rule of February 2020 for counties (see the module docstring)."""

    window_days: int = 14
    cumulative_above: int = 50
    cluster_min_cases: int = 2
    name: str = "national_2020"

    def assess(self, inputs: RiskInputs) -> RiskLevel:
        """The unit's risk level."""
        if inputs.cumulative_confirmed == 0 or inputs.confirmed_in_window == 0:
            return RiskLevel.LOW
        if inputs.cumulative_confirmed > self.cumulative_above and inputs.cluster_in_window:
            return RiskLevel.HIGH
        return RiskLevel.MEDIUM

    def public_level(self, window: tuple[int | None, ...], cumulative: int | None) -> str:
        """The level the published figures allow.

        Low is exact (a suppressed count is at least 1, so the window shows whether any
        case was reported). Medium is shown when the published cumulative is at most
        ``cumulative_above``; otherwise medium and high depend on the cluster, which is
        not published, so the release says ``medium_or_high``.
        """
        if all(v == 0 for v in window):
            return RiskLevel.LOW.value
        if cumulative is not None and cumulative <= self.cumulative_above:
            return RiskLevel.MEDIUM.value
        return MEDIUM_OR_HIGH


ZoningRule = RiskRule | NationalRule2020
