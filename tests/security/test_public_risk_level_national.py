"""Under the national rule of 2020 (the default), the published risk level is true and
says nothing beyond the published figures (Hypothesis).

The rule's medium/high split needs the cluster, which is not published: a release shows
``low`` (exact: a suppressed count is at least 1), ``medium`` when the published
cumulative is at most the threshold, else ``medium_or_high``, whatever the cluster.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.security.public_history import History, histories
from zhibao_aggregator.domain.public import MEDIUM_OR_HIGH, NEW_CONFIRMED, ReleaseRules
from zhibao_aggregator.domain.risk import NationalRule2020, RiskInputs, RiskLevel

#: A window of 3 days and a threshold of 6, so that every level occurs in small histories.
NATIONAL = ReleaseRules(5, NationalRule2020(window_days=3, cumulative_above=6))
MEANS: dict[str, set[str]] = {
    **{level.value: {level.value} for level in RiskLevel},
    MEDIUM_OR_HIGH: {RiskLevel.MEDIUM.value, RiskLevel.HIGH.value},
}


def _truths(history: History, day: int, unit: str) -> set[str]:
    """The unit's true level on ``day``, with or without a cluster."""
    first = max(0, day - NATIONAL.risk.window_days + 1)
    window = sum(history.total(history.new[d], unit) for d in range(first, day + 1))
    cumulative = sum(history.total(history.new[d], unit) for d in range(day + 1))
    return {
        NATIONAL.risk.assess(RiskInputs(window, cumulative, cluster)).value
        for cluster in (False, True)
    }


@given(history=histories(leaf=st.integers(0, 4), rules=NATIONAL))
def test_the_published_level_is_true_whatever_the_cluster(history: History) -> None:
    for day, release in enumerate(history.releases):
        for unit in history.units():
            shown = release.units[unit]["risk_level"]
            assert _truths(history, day, unit) <= MEANS[shown], (day, unit, shown)


@given(history=histories(leaf=st.integers(0, 4), rules=NATIONAL))
def test_the_published_level_follows_from_published_figures_only(history: History) -> None:
    for day, release in enumerate(history.releases):
        first = max(0, day - NATIONAL.risk.window_days + 1)
        for unit in history.units():
            figures = release.units[unit]
            window = [
                history.releases[d].units[unit][NEW_CONFIRMED]["value"]
                for d in range(first, day + 1)
            ]
            cumulative = figures["cumulative_confirmed"]["value"]
            assert figures["risk_level"] == NATIONAL.risk.public_level(tuple(window), cumulative)
            assert figures["risk_level"] != RiskLevel.HIGH.value, "the cluster is not public"
