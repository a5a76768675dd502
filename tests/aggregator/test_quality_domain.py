"""The scorecard's pure rules: the case-report limit's boundary, the lag quantiles, the
declared-counts comparison and the composite score's weights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import quality as q
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_shared.events import PublishedCase

CALENDAR = Calendar.named("Asia/Shanghai")
CLASSIFIED = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _case(classification: str, lag: timedelta, n: int = 1) -> PublishedCase:
    return PublishedCase.model_validate(
        {
            "specversion": "1.0",
            "id": f"c{n}",
            "source": "/x",
            "subject": "640106001001",
            "type": "zhibao.case.v1",
            "time": CLASSIFIED,
            "reporter": "tok",
            "receivedat": CLASSIFIED + lag,
            "data": {"person": {"pid": "f" * 32}, "classification": classification},
        },
        context={"stored": True},
    )


def test_a_case_received_exactly_at_the_limit_is_within_it_a_minute_later_is_not() -> None:
    limit = timedelta(hours=2)
    events = [
        _case("confirmed", limit, 1),
        _case("suspected", limit + timedelta(minutes=1), 2),
        _case("close_contact", timedelta(hours=30), 3),
    ]
    counted = q.case_lags(events, CALENDAR, limit)
    key = ("640106001001", date(2026, 3, 2))
    assert counted[(*key, m.CASE_REPORTS)] == 2, "a close contact is not a case report"
    assert counted[(*key, m.CASE_REPORTS_IN_LIMIT)] == 1
    assert counted[(*key, "case_lag_le_120")] == 1 and counted[(*key, "case_lag_le_180")] == 1


def test_lag_quantiles_name_the_bucket_holding_them() -> None:
    histogram = {"case_lag_le_30": 5, "case_lag_le_240": 4, m.CASE_LAG_OVER: 1}
    assert q.lag_quantile_hours(histogram, 0.5) == 0.5
    assert q.lag_quantile_hours(histogram, 0.9) == 4.0
    assert q.lag_quantile_hours(histogram, 0.95) == "> 168"
    assert q.lag_quantile_hours({}, 0.5) is None


def test_only_declared_counts_that_differ_are_flagged() -> None:
    declared = {"screenings": 5, "fevers": None, "in_isolation": 0}
    assert q.count_differences(declared, {"screenings": 5, "fevers": 3}) == {}
    assert q.count_differences(declared, {"screenings": 4, "in_isolation": 2}) == {
        "screenings": {"declared": 5, "counted": 4},
        "in_isolation": {"declared": 0, "counted": 2},
    }


def _counts(**sums: int) -> q.PeriodCounts:
    return q.PeriodCounts(
        communities=1, days_due=4, sums=sums, last_event=date(2026, 3, 2), never_reported=0
    )


def test_the_composite_leaves_out_what_does_not_apply_and_follows_the_weights() -> None:
    counts = _counts(reports_on_time=2, reports_received=4, reports_late=2, events=10)
    card = q.scorecard(counts, date(2026, 3, 4), q.Weights())
    # on time 0.5 (40), timely events 1 (15), accepted 1 (10), uncorrected 1 (5),
    # consistency 1 (10); no case reported: the case lag is left out
    assert card["score"] == round(100 * (20 + 15 + 10 + 5 + 10) / 80, 1)
    assert card["days_since_last_event"] == 2 and card["closes_missing"] == 0
    only_on_time = q.Weights(timely_events=0, accepted=0, uncorrected=0, case_lag=0, consistency=0)
    assert q.scorecard(counts, date(2026, 3, 4), only_on_time)["score"] == 50.0
    nothing_due = q.PeriodCounts(1, 0, {}, None, 1)
    card = q.scorecard(nothing_due, date(2026, 3, 4), q.Weights())
    assert card["score"] is None and card["days_since_last_event"] == "never"
