"""CDC Early Aberration Reporting System (EARS) C1, C2 and C3, as pure functions.

References: Hutwagner L, Thompson W, Seeman GM, Treadwell T. "The bioterrorism
preparedness and response Early Aberration Reporting System (EARS)."
J Urban Health 2003;80(2 Suppl 1):i89-96; Fricker RD, Hegler BL, Dunfee DA.
"Comparing syndromic surveillance detection methods: EARS' versus a CUSUM-based
methodology." Stat Med 2008;27:3407-29.

For a daily count series ``y``:

* **C1** (baseline: the 7 days before ``t``, no lag):
  ``C1_t = (y_t - mean) / sd``; alarm when ``C1_t > threshold`` (3).
* **C2** (baseline: days ``t-9 .. t-3``, i.e. 7 days after a 2-day lag):
  same statistic; alarm when ``C2_t > threshold`` (3).
* **C3** (built on C2 over the last 3 days):
  ``C3_t = sum_{i=t-2..t} max(0, C2_i - 1)``; alarm when ``C3_t > c3_threshold`` (2).

Days before a unit's first data are missing (``None``), not zero, and so are
days before the series starts: a baseline is the days of the window that have
data, and needs at least ``min_baseline_days`` of them (all 7 by default), so
a unit that has just started reporting is not compared with zeros it never
sent.

``sd`` is the sample standard deviation of the baseline, floored at
``min_sd`` so a flat baseline (all zeros) does not divide by zero and a
single case does not alarm on its own unless configured so. The upper bound
is the smallest count that would have raised the alarm's statistic to its
threshold on that day: ``mean + threshold * sd`` for C1 and C2, and for C3
``mean_C2 + sd_C2 * (1 + max(0, c3_threshold - earlier))`` where
``earlier`` is the C3 contribution of the two previous days.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

BASELINE_DAYS = 7
C2_LAG = 2


@dataclass(frozen=True)
class EarsParams:
    """Configurable thresholds."""

    threshold: float = 3.0
    c3_threshold: float = 2.0
    min_sd: float = 0.2
    min_baseline_days: int = BASELINE_DAYS


@dataclass(frozen=True)
class EarsPoint:
    """One day's result; ``statistic`` is None while the baseline is too short."""

    value: float
    mean: float | None
    sd: float | None
    statistic: float | None
    upper_bound: float | None
    alarm: bool


#: A daily series: ``None`` for a day before the unit's first data.
Series = Sequence[float | None]


def _baseline(series: Series, end: int, params: EarsParams) -> tuple[float, float] | None:
    window = tuple(v for v in series[max(0, end - BASELINE_DAYS) : max(0, end)] if v is not None)
    if len(window) < max(2, params.min_baseline_days):
        return None
    mean, sd = _mean_sd(window)
    return mean, max(sd, params.min_sd)


@functools.lru_cache(maxsize=4096)
def _mean_sd(window: tuple[float, ...]) -> tuple[float, float]:
    # statistics.stdev is exact but slow, and the same baselines (often all zeros) recur
    # across units and batches, so they are remembered.
    return statistics.fmean(window), statistics.stdev(window)


def _lagged(series: Series, lag: int, params: EarsParams) -> list[EarsPoint]:
    points = []
    for t, value in enumerate(series):
        base = _baseline(series, t - lag, params)
        if base is None or value is None:
            points.append(EarsPoint(value or 0.0, None, None, None, None, False))
            continue
        mean, sd = base
        statistic = (value - mean) / sd
        bound = mean + params.threshold * sd
        points.append(EarsPoint(value, mean, sd, statistic, bound, statistic > params.threshold))
    return points


def c1(series: Series, params: EarsParams = EarsParams()) -> list[EarsPoint]:
    """EARS C1 for every day of ``series``."""
    return _lagged(series, 0, params)


def c2(series: Series, params: EarsParams = EarsParams()) -> list[EarsPoint]:
    """EARS C2 for every day of ``series``."""
    return _lagged(series, C2_LAG, params)


def c3(series: Series, params: EarsParams = EarsParams()) -> list[EarsPoint]:
    """EARS C3 for every day of ``series`` (needs C2 on the two previous days too)."""
    base = c2(series, params)
    excess = [max(0.0, p.statistic - 1) if p.statistic is not None else None for p in base]
    points = []
    for t, point in enumerate(base):
        window = excess[max(0, t - 2) : t + 1]
        if t < 2 or any(e is None for e in window) or point.mean is None or point.sd is None:
            points.append(EarsPoint(point.value, None, None, None, None, False))
            continue
        statistic = math.fsum(e for e in window if e is not None)
        earlier = math.fsum(e for e in window[:-1] if e is not None)
        bound = point.mean + point.sd * (1 + max(0.0, params.c3_threshold - earlier))
        alarm = statistic > params.c3_threshold
        points.append(EarsPoint(point.value, point.mean, point.sd, statistic, bound, alarm))
    return points


METHODS = {"C1": c1, "C2": c2, "C3": c3}

#: The days of a series the last day's result depends on: the baseline, C2's lag, and for
#: C3 the two days before.
DAYS_NEEDED = {
    "C1": BASELINE_DAYS + 1,
    "C2": BASELINE_DAYS + C2_LAG + 1,
    "C3": BASELINE_DAYS + C2_LAG + 3,
}


def last_day(method: str, series: Series, params: EarsParams) -> EarsPoint:
    """The result of ``method`` for the last day of ``series`` only (the same point as
    ``METHODS[method](series, params)[-1]``, without computing the earlier days)."""
    return _last_day(method, tuple(series[-DAYS_NEEDED[method] :]), params)


@functools.lru_cache(maxsize=16_384)
def _last_day(method: str, series: tuple[float | None, ...], params: EarsParams) -> EarsPoint:
    # a batch judges every series it touched at every level, and most are alike (a quiet
    # baseline, a count of one or two): the same days give the same (immutable) point
    return METHODS[method](series, params)[-1]
