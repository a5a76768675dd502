"""The published risk level cannot pin a suppressed count (Hypothesis, exhaustive attacker).

The attacker knows every released figure (counts, stocks, days without a new
case, risk levels), that parents are the sums of their children and that a
suppressed count is at least 1 (zeros are shown). They try every value of
the last release's suppressed new confirmed counts and keep the worlds the
published figures allow.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.security.public_history import RISK, RULES, History, histories
from zhibao_aggregator.domain.public import MEDIUM_OR_HIGH, NEW_CONFIRMED, UNDISCLOSED
from zhibao_aggregator.domain.rollup import RiskLevel

#: What each published level says the true level may be.
MEANS: dict[str, set[str]] = {
    **{level.value: {level.value} for level in RiskLevel},
    MEDIUM_OR_HIGH: {RiskLevel.MEDIUM.value, RiskLevel.HIGH.value},
    UNDISCLOSED: {level.value for level in RiskLevel},
}


def _shown_new(history: History, release: int, unit: str) -> int | None:
    value: int | None = history.releases[release].units[unit][NEW_CONFIRMED]["value"]
    return value


def _world_level(history: History, world: dict[str, int], unit: str) -> str:
    """The true risk level of ``unit`` if the last day's leaf counts were ``world``."""
    last = len(history.new) - 1
    first = max(0, last - RULES.risk.window_days + 1)
    earlier = sum(history.total(history.new[d], unit) for d in range(first, last))
    return RISK.level(earlier + history.total(world, unit)).value


def _worlds(history: History) -> list[tuple[dict[str, int], bool]]:
    """Every assignment of the hidden leaf counts that the published counts allow.

    Each comes with whether the published risk levels allow it too.
    """
    last = len(history.new) - 1
    hidden = [u for u in history.leaves if _shown_new(history, last, u) is None]
    cap = history.total(history.new[last], "r") + 2
    found = []
    for guess in itertools.product(range(1, cap + 1), repeat=len(hidden)):
        world = {**history.new[last], **dict(zip(hidden, guess, strict=True))}
        counts_allow = all(
            history.total(world, u) == shown if shown is not None else history.total(world, u) >= 1
            for u in history.units()
            for shown in [_shown_new(history, last, u)]
        )
        if counts_allow:
            levels_allow = all(
                _world_level(history, world, u)
                in MEANS[history.releases[last].units[u]["risk_level"]]
                for u in history.units()
            )
            found.append((world, levels_allow))
    return found


@settings(suppress_health_check=[HealthCheck.filter_too_much], deadline=None, max_examples=150)
@given(history=histories(leaf=st.integers(0, 7)))
def test_the_level_rules_out_no_value_a_suppressed_count_could_take(history: History) -> None:
    last = len(history.new) - 1
    hidden = [u for u in history.leaves if _shown_new(history, last, u) is None]
    assume(1 <= len(hidden) <= 3)
    worlds = _worlds(history)
    assert any(world == history.new[last] for world, _ in worlds), "the truth is a world"
    assert all(levels_allow for _, levels_allow in worlds), "a level ruled out a world"
    for unit in history.units():
        if _shown_new(history, last, unit) is None:
            values = {history.total(world, unit) for world, _ in worlds}
            assert len(values) >= 2, f"{unit} can only be {values}"


@given(history=histories())
def test_the_level_is_true_and_exact_when_nothing_in_its_window_is_hidden(
    history: History,
) -> None:
    for day, release in enumerate(history.releases):
        first = max(0, day - RULES.risk.window_days + 1)
        for unit in history.units():
            truth = RISK.level(
                sum(history.total(history.new[d], unit) for d in range(first, day + 1))
            ).value
            shown = release.units[unit]["risk_level"]
            assert truth in MEANS[shown]
            window = [_shown_new(history, d, unit) for d in range(first, day + 1)]
            if None not in window:
                assert shown == truth


def test_a_suppressed_count_makes_medium_and_high_one_level() -> None:
    """Medium would say 1 to 9 cases in the window: with one hidden count of 1-4 the rest ≤ 8."""
    from zhibao_aggregator.domain.public import public_level

    assert public_level((0, None, 0), RULES.risk) == MEDIUM_OR_HIGH
    assert public_level((12, None), RULES.risk) == "high", "high whatever the hidden count"
    assert public_level((0, 0, 0), RULES.risk) == "low"
    assert public_level((6, 0), RULES.risk) == "medium"
