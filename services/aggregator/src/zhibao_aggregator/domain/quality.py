"""The data-quality and timeliness scorecard: pure judgements and the composite score.

Storage maintains per (community, day) counters as events are written (the case-report
lag histogram here; events, late events and the daily close's on-time/late/zero judgement
in :mod:`contributions`) and reads them back summed over a period. This module turns those
sums into the scorecard's figures; the README's "Data-quality scorecard" section defines
every figure and the composite score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.contributions import Contribution
from zhibao_shared.events import Classification, PublishedCase

#: Case classifications reported under the statutory limits (a close contact, an exclusion,
#: a recovery or a death updates a case; it is not a case report).
REPORTABLE = frozenset(
    (Classification.SUSPECTED, Classification.CONFIRMED, Classification.ASYMPTOMATIC)
)
#: Corrections applied, counted on the corrected event's day.
CORRECTIONS = m.CORRECTIONS
#: The figures a daily close may declare (``DeclaredCounts``), compared with the counters.
DECLARABLE: tuple[str, ...] = (
    m.SCREENINGS,
    m.FEVERS,
    m.new_metric(Classification.SUSPECTED),
    m.NEW_CONFIRMED,
    m.IN_ISOLATION,
)
NEVER = "never"

Figure = int | float | str | None | dict[str, int]


def lag_bucket(lag: timedelta) -> str:
    """The histogram bucket of a case-report lag (the first bound it does not exceed)."""
    minutes = lag.total_seconds() / 60
    for bound, name in zip(m.CASE_LAG_BOUNDS_MIN, m.CASE_LAG_BUCKETS, strict=False):
        if minutes <= bound:
            return name
    return m.CASE_LAG_OVER


def case_lag_metrics(event: PublishedCase, limit: timedelta) -> tuple[str, ...]:
    """What a case event counts by itself in the scorecard (each +1 on its ``time``'s day):
    a case report of a reportable class, again when received within ``limit``, and its lag
    bucket. A ``receivedat`` before ``time`` (a device clock ahead) counts as no lag."""
    return lag_metrics(event.data.classification, event.time, event.receivedat, limit)


def lag_metrics(
    classification: Classification, time: datetime, received: datetime, limit: timedelta
) -> tuple[str, ...]:
    """:func:`case_lag_metrics` from the parts of a case event (a replaced case keeps its
    ``time`` and receipt and may change its classification)."""
    if classification not in REPORTABLE:
        return ()
    lag = max(timedelta(0), received - time)
    in_limit = (m.CASE_REPORTS_IN_LIMIT,) if lag <= limit else ()
    return (m.CASE_REPORTS, *in_limit, lag_bucket(lag))


def case_lags(
    events: Iterable[PublishedCase], calendar: Calendar, limit: timedelta
) -> Contribution:
    """:func:`case_lag_metrics` of a batch's case events, on the day of their ``time``."""
    out: Contribution = Counter()
    for event in events:
        for metric in case_lag_metrics(event, limit):
            out[(event.subject, calendar.day(event.time), metric)] += 1
    return out


def lag_quantile_hours(histogram: Mapping[str, int], share: float) -> float | str | None:
    """The upper bound (hours) of the bucket holding the ``share`` quantile of the lags;
    ``"> N"`` when it lies in the open last bucket, None without case reports."""
    total = sum(histogram.get(name, 0) for name in m.CASE_LAG_BUCKETS)
    if total == 0:
        return None
    seen = 0
    for bound, name in zip(m.CASE_LAG_BOUNDS_MIN, m.CASE_LAG_BUCKETS, strict=False):
        seen += histogram.get(name, 0)
        if seen >= share * total:
            return round(bound / 60, 2)
    return f"> {m.CASE_LAG_BOUNDS_MIN[-1] // 60}"


def count_differences(
    declared: Mapping[str, int | None], counted: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """The declared figures that differ from what the community's events add up to."""
    return {
        name: {"declared": value, "counted": counted.get(name, 0)}
        for name, value in declared.items()
        if value is not None and value != counted.get(name, 0)
    }


@dataclass(frozen=True)
class Weights:
    """The composite score's weights (non-negative; only their ratios matter)."""

    on_time: float = 40.0
    timely_events: float = 15.0
    accepted: float = 10.0
    uncorrected: float = 5.0
    case_lag: float = 20.0
    consistency: float = 10.0

    def as_dict(self) -> dict[str, float]:
        """The weights by component name."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class PeriodCounts:
    """What storage read for one unit and period (closes: over the days already due)."""

    communities: int
    days_due: int
    sums: Mapping[str, int]
    last_event: date | None
    never_reported: int
    rejected: Mapping[str, int] = field(default_factory=dict)
    zero_contradicted: int = 0
    counts_differing: int = 0
    flagged_closes: int = 0


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def scorecard(counts: PeriodCounts, last: date, weights: Weights) -> dict[str, Figure]:
    """Every figure of the scorecard for one unit (see the README for the definitions)."""
    s = counts.sums
    expected = counts.communities * counts.days_due
    on_time, received = s.get(m.REPORTS_ON_TIME, 0), s.get(m.REPORTS_RECEIVED, 0)
    events, rejected = s.get(m.EVENTS, 0), sum(counts.rejected.values())
    cases, in_limit = s.get(m.CASE_REPORTS, 0), s.get(m.CASE_REPORTS_IN_LIMIT, 0)
    out: dict[str, Figure] = {
        "communities": counts.communities,
        "closes_expected": expected,
        "closes_on_time": on_time,
        "closes_late": s.get(m.REPORTS_LATE, 0),
        "closes_missing": max(0, expected - received),
        "on_time_rate": _share(on_time, expected),
        "events": events,
        "late_events": s.get(m.LATE_EVENTS, 0),
        "late_share": _share(s.get(m.LATE_EVENTS, 0), events),
        "corrections": s.get(CORRECTIONS, 0),
        "corrected_share": _share(s.get(CORRECTIONS, 0), events),
        "rejected": rejected,
        "rejected_share": _share(rejected, events + rejected),
        "rejected_by_reason": dict(sorted(counts.rejected.items())),
        "case_reports": cases,
        "case_reports_in_limit": in_limit,
        "case_in_limit_share": _share(in_limit, cases),
        "case_lag_median_h": lag_quantile_hours(s, 0.5),
        "case_lag_p90_h": lag_quantile_hours(s, 0.9),
        "zero_contradicted": counts.zero_contradicted,
        "counts_differing": counts.counts_differing,
        "last_event": counts.last_event.isoformat() if counts.last_event else None,
        "days_since_last_event": (last - counts.last_event).days if counts.last_event else NEVER,
        "never_reported": counts.never_reported,
    }
    out["score"] = composite(out, counts.flagged_closes, received, weights)
    return out


def composite(
    figures: Mapping[str, Figure], flagged: int, received: int, weights: Weights
) -> float | None:
    """``100 * Σ wᵢ·cᵢ / Σ wᵢ`` over the components that apply (a component without a
    denominator, e.g. the case lag where no case was reported, is left out); None if none."""
    components = {
        "on_time": _value(figures["on_time_rate"]),
        "timely_events": _complement(figures["late_share"]),
        "accepted": _complement(figures["rejected_share"]),
        "uncorrected": _complement(figures["corrected_share"]),
        "case_lag": _value(figures["case_in_limit_share"]),
        "consistency": 1 - flagged / received if received else None,
    }
    weight = weights.as_dict()
    applying = {name: c for name, c in components.items() if c is not None and weight[name] > 0}
    total = sum(weight[name] for name in applying)
    if not total:
        return None
    return round(100 * sum(weight[name] * c for name, c in applying.items()) / total, 1)


def _value(figure: Figure) -> float | None:
    return float(figure) if isinstance(figure, int | float) else None


def _complement(figure: Figure) -> float | None:
    value = _value(figure)
    return None if value is None else 1 - value
