"""Released figures cannot be differenced into a suppressed count (Hypothesis, pure).

Differencing two releases' stocks gives the counts newly reported in
between; so a stock is shown only when those are shown too, and every shown
stock equals what the published counts already add up to. Days without a new
case follow from which published counts are zero.
"""

from __future__ import annotations

import itertools

from hypothesis import given

from tests.security.public_history import History, histories
from zhibao_aggregator.domain.public import CUMULATIVE, CURRENT, NEW_CLOSED, NEW_CONFIRMED


def _values(history: History, unit: str, count: str, upto: int) -> list[int | None]:
    return [history.releases[d].units[unit][count]["value"] for d in range(upto + 1)]


@given(history=histories(days=6))
def test_every_shown_stock_is_the_sum_of_published_counts(history: History) -> None:
    for day, release in enumerate(history.releases):
        for unit in history.units():
            shown = release.units[unit]
            new = _values(history, unit, NEW_CONFIRMED, day)
            closed = _values(history, unit, NEW_CLOSED, day)
            if shown[CUMULATIVE]["suppressed"]:
                assert shown[CURRENT]["suppressed"]
                continue
            assert None not in new and None not in closed, f"{unit} on day {day}"
            assert shown[CUMULATIVE]["value"] == sum(v for v in new if v is not None)
            assert shown[CURRENT]["value"] == shown[CUMULATIVE]["value"] - sum(
                v for v in closed if v is not None
            )


@given(history=histories(days=6))
def test_no_two_releases_difference_into_a_suppressed_count(history: History) -> None:
    """Any two releases showing a unit's cumulative: the difference is of shown counts."""
    for unit in history.units():
        shown = [
            (day, r.units[unit][CUMULATIVE]["value"])
            for day, r in enumerate(history.releases)
            if not r.units[unit][CUMULATIVE]["suppressed"]
        ]
        for (early, before), (late, after) in itertools.pairwise(shown):
            between = _values(history, unit, NEW_CONFIRMED, late)[early + 1 :]
            assert None not in between
            assert after - before == sum(v for v in between if v is not None)


@given(history=histories(days=6))
def test_days_without_a_new_case_follow_from_the_published_counts(history: History) -> None:
    for day, release in enumerate(history.releases):
        for unit in history.units():
            new = _values(history, unit, NEW_CONFIRMED, day)
            nonzero = [d for d, v in enumerate(new) if v != 0]  # suppressed means 1 or more
            expected = day - nonzero[-1] if nonzero else None
            assert release.units[unit]["days_without_new_case"] == expected


def test_a_unit_whose_new_count_was_once_hidden_never_shows_stocks_again() -> None:
    from datetime import date

    from tests.security.public_history import RULES
    from zhibao_aggregator.domain.public import make_release

    groups = {"r": ("a", "b", "c")}

    def figures(a: int, b: int, c: int) -> dict[str, dict[str, int | str | None]]:
        values = {"a": a, "b": b, "c": c, "r": a + b + c}
        return {u: {CUMULATIVE: v, CURRENT: v} for u, v in values.items()}

    first = make_release(date(2020, 2, 1), figures(2, 9, 6), groups, None, RULES)
    second = make_release(date(2020, 2, 2), figures(2, 9, 6), groups, first.state, RULES)
    third = make_release(date(2020, 2, 3), figures(8, 9, 6), groups, second.state, RULES)
    assert first.units["a"][NEW_CONFIRMED]["suppressed"]
    for release in (first, second, third):
        assert release.units["a"][CUMULATIVE] == {"value": None, "suppressed": True}
    assert [r.units["r"][NEW_CONFIRMED]["value"] for r in (first, second, third)] == [17, 0, 6]
    assert third.units["r"][CUMULATIVE] == {"value": 23, "suppressed": False}
    assert second.units["a"][NEW_CONFIRMED] == {"value": 0, "suppressed": False}
    assert third.units["a"][NEW_CONFIRMED] == {"value": 6, "suppressed": False}


def test_a_unit_whose_closed_total_goes_down_stops_showing_stocks() -> None:
    """Current up with no new case (someone confirmed again) would show a count of 1."""
    from datetime import date

    from tests.security.public_history import RULES
    from zhibao_aggregator.domain.public import make_release

    groups = {"r": ("a", "b")}

    def figures(current_a: int) -> dict[str, dict[str, int | str | None]]:
        a: dict[str, int | str | None] = {CUMULATIVE: 9, CURRENT: current_a}
        b: dict[str, int | str | None] = {CUMULATIVE: 9, CURRENT: 9}
        return {"a": a, "b": b, "r": {CUMULATIVE: 18, CURRENT: current_a + 9}}

    first = make_release(date(2020, 2, 1), figures(3), groups, None, RULES)
    second = make_release(date(2020, 2, 2), figures(4), groups, first.state, RULES)
    assert first.units["a"][CURRENT] == {"value": 3, "suppressed": False}
    assert second.units["a"][CURRENT] == {"value": None, "suppressed": True}
    assert second.units["a"][CUMULATIVE]["suppressed"]


def test_a_unit_holding_more_current_cases_than_it_ever_reported_shows_no_stocks() -> None:
    """A person confirmed in ``b`` and reported again in ``a`` is current in ``a`` (last
    reported there) but counted new in ``b``: ``a``'s current of 1 follows from no
    published count, so its stocks are not shown."""
    from datetime import date

    from tests.security.public_history import RULES
    from zhibao_aggregator.domain.public import make_release

    groups = {"r": ("a", "b")}
    figures: dict[str, dict[str, int | str | None]] = {
        "a": {CUMULATIVE: 0, CURRENT: 1},
        "b": {CUMULATIVE: 1, CURRENT: 0},
        "r": {CUMULATIVE: 1, CURRENT: 1},
    }
    release = make_release(date(2020, 2, 1), figures, groups, None, RULES)
    assert release.units["a"][NEW_CONFIRMED] == {"value": 0, "suppressed": False}
    assert release.units["a"][CURRENT] == {"value": None, "suppressed": True}
    assert release.units["a"][CUMULATIVE] == {"value": None, "suppressed": True}
