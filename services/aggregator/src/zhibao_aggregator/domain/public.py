"""What a public summary shows of a unit's figures (pure).

Only daily flows are public counts: what happened that day. Running totals
and stocks (cumulative confirmed, people in isolation) are left out, because
yesterday's and today's values differ by the day's flows and would give a
suppressed flow back by subtraction. Each count is suppressed over the whole
published hierarchy at once (see :mod:`zhibao_aggregator.domain.suppression`),
so every unit's summary shows the same decision for the same count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.suppression import CountTable, suppress
from zhibao_shared.events import Classification

#: The counts a public summary shows (all daily flows).
PUBLIC_COUNTS: tuple[str, ...] = (
    m.SCREENINGS,
    m.FEVERS,
    m.new_metric(Classification.SUSPECTED),
    m.NEW_CONFIRMED,
    m.new_metric(Classification.ASYMPTOMATIC),
    m.ISOLATION_STARTED,
)
#: Statuses shown as they are (the published risk zoning; no count of people).
PUBLIC_STATUSES: tuple[str, ...] = ("risk_level",)

Figures = Mapping[str, int | str | None]


def _count(figures: Figures, metric: str) -> int:
    value = figures.get(metric)
    return value if isinstance(value, int) else 0


def hidden_counts(
    figures: Mapping[str, Figures], groups: Mapping[str, tuple[str, ...]], threshold: int
) -> dict[str, frozenset[str]]:
    """Per public count, the units whose value is suppressed.

    ``figures`` holds every published unit's figures for one day and
    ``groups`` how those units nest (parent → published children).
    """
    return {
        metric: suppress(
            CountTable({code: _count(f, metric) for code, f in figures.items()}, groups),
            threshold,
        )
        for metric in PUBLIC_COUNTS
    }


def public_figures(
    code: str, figures: Figures, hidden: Mapping[str, frozenset[str]]
) -> dict[str, Any]:
    """One unit's public figures: each count as ``{"value", "suppressed"}``, statuses as is."""
    shown: dict[str, Any] = {}
    for metric in PUBLIC_COUNTS:
        suppressed = code in hidden[metric]
        shown[metric] = {
            "value": None if suppressed else _count(figures, metric),
            "suppressed": suppressed,
        }
    for status in PUBLIC_STATUSES:
        shown[status] = figures.get(status)
    return shown
