"""(4) POST → rollup latencies on a stream that held a history before the load.

The k-th event POSTed for a community and day is visible once the published rollup
counts k more than the history put there: a rollup showing only the history's events
must not pass for one showing the POSTed event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from zhibao_bench.mixed import _rollup_latencies, history_counts
from zhibao_bench.workload import truth_of

COMMUNITY = "640106001001"
DAY = "2026-12-05"


def _event() -> dict[str, str]:
    return {"subject": COMMUNITY, "time": "2026-12-05T03:00:00+00:00"}


def test_an_event_is_visible_only_when_the_rollup_counts_it_beyond_the_history() -> None:
    seen = {(COMMUNITY, DAY): [(100.0, 3), (100.5, 4), (101.0, 5)]}
    latencies, invisible = _rollup_latencies(
        [_event(), _event()], [100.2, 100.3], seen, before={(COMMUNITY, DAY): 3}
    )
    assert invisible == 0
    assert [round(ms) for ms in latencies] == [300, 700]


def test_an_event_the_rollup_never_counted_beyond_the_history_is_never_seen() -> None:
    seen = {(COMMUNITY, DAY): [(100.0, 3)]}
    latencies, invisible = _rollup_latencies([_event()], [99.0], seen, before={(COMMUNITY, DAY): 3})
    assert (latencies, invisible) == ([], 1)


def test_the_history_counts_on_the_local_day_the_rollups_name() -> None:
    late_evening_utc = {
        "specversion": "1.0",
        "id": "h-1",
        "source": "/gate",
        "subject": COMMUNITY,
        "time": "2026-12-04T17:00:00+00:00",  # 01:00 on the 5th in Shanghai
        "type": "zhibao.screening.v1",
        "data": {"temperature_c": 36.5, "site": "gate", "travel_from_risk_area": False},
    }
    truth = truth_of([late_evening_utc], datetime(2026, 12, 5, 4, tzinfo=UTC))
    assert history_counts(truth) == {(COMMUNITY, DAY): 1}
