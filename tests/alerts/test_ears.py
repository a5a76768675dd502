"""EARS C1/C2/C3 against values computed by hand."""

from __future__ import annotations

import pytest

from zhibao_alerts.domain.ears import METHODS, EarsParams, c1, c2, c3, last_day

# Baseline 2,4,2,4,2,4,2: mean 20/7 = 2.857142..., sample sd = 1.069044...
BASE = [2, 4, 2, 4, 2, 4, 2]
MEAN = 20 / 7
SD = 1.0690449676496976


def test_c1_needs_seven_days_of_baseline() -> None:
    points = c1([*BASE, 7])
    assert all(p.statistic is None and not p.alarm for p in points[:7])
    day8 = points[7]
    assert day8.mean == pytest.approx(MEAN)
    assert day8.sd == pytest.approx(SD)
    # (7 - 2.857142) / 1.069045 = 3.8752
    assert day8.statistic == pytest.approx(3.8752, abs=1e-4)
    # upper bound 2.857142 + 3 * 1.069045 = 6.0643
    assert day8.upper_bound == pytest.approx(6.0643, abs=1e-4)
    assert day8.alarm


def test_c1_does_not_alarm_within_the_bound() -> None:
    assert not c1([*BASE, 6])[7].alarm


def test_c2_skips_the_two_most_recent_days() -> None:
    # Days 7 and 8 (values 50, 50) are inside the lag: day 9's baseline is days 0..6.
    points = c2([*BASE, 50, 50, 7])
    assert points[8].statistic is None
    day10 = points[9]
    assert day10.mean == pytest.approx(MEAN)
    assert day10.statistic == pytest.approx(3.8752, abs=1e-4)
    assert day10.alarm


def test_min_sd_floors_a_flat_baseline() -> None:
    flat = [0] * 7
    assert c1([*flat, 1], EarsParams(min_sd=0.5))[7].statistic == pytest.approx(2.0)
    assert not c1([*flat, 1], EarsParams(min_sd=0.5))[7].alarm
    assert c1([*flat, 2], EarsParams(min_sd=0.5))[7].alarm


def test_c3_sums_c2_excess_over_three_days() -> None:
    # Baseline of zeros with min_sd 1: C2 on days 9, 10, 11 equals the value itself.
    series = [0] * 9 + [2, 2, 1]
    points = c3(series, EarsParams(min_sd=1.0))
    # excess max(0, C2 - 1): day 9 -> 1, day 10 -> 1, day 11 -> 0; C3 day 11 = 2 (not > 2)
    assert points[11].statistic == pytest.approx(2.0)
    assert not points[11].alarm
    # day 10 needs C2 of day 8, whose baseline (days -1..5) does not exist yet
    assert points[10].statistic is None and not points[10].alarm
    more = c3([0] * 9 + [2, 2, 2], EarsParams(min_sd=1.0))
    assert more[11].statistic == pytest.approx(3.0)
    assert more[11].alarm
    # bound on day 11: mean 0 + sd 1 * (1 + max(0, 2 - (1 + 1))) = 1
    assert more[11].upper_bound == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["C1", "C2", "C3"])
def test_the_last_day_alone_equals_the_last_point_of_the_whole_series(method: str) -> None:
    series = [0, 1, 0, 3, 2, 0, 1, 5, 2, 4, 2, 4, 2, 9]
    params = EarsParams(min_sd=1.0)
    for end in range(1, len(series) + 1):
        assert last_day(method, series[:end], params) == METHODS[method](series[:end], params)[-1]


def test_days_before_the_first_data_are_missing_not_zero() -> None:
    params = EarsParams(min_sd=1.0, min_baseline_days=3)
    steady = [None] * 10 + [30.0, 30.0, 30.0, 30.0]
    for method in ("C1", "C2", "C3"):
        points = METHODS[method](steady, params)
        assert not any(p.alarm for p in points), method
    # C1 judges the 4th day of data, on a baseline of the three days before it
    assert [p.statistic is not None for p in c1(steady, params)][10:] == [False] * 3 + [True]
    assert c1([None, None, 2, 4, 3, 12], params)[-1].alarm
