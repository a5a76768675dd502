"""(11) The per-unit phase: every job that grows with the units is timed over the whole
registry with the services' own storage and handlers, and extrapolated to a province.

Not a timed test: the figures are checked for what they are made of, not against targets.
"""

from __future__ import annotations

import pytest

from zhibao_bench.per_unit import INTERVALS_S, PROVINCE_COMMUNITIES, phase_per_unit


@pytest.mark.timeout(600)
def test_every_job_is_measured_per_community_and_extrapolated_to_a_province() -> None:
    results = phase_per_unit(repeats=1, history_days=3)
    assert results["units"] == {
        "province": 1,
        "city": 1,
        "district": 6,
        "street": 51,
        "community": 323,
    }
    jobs = set(INTERVALS_S)
    assert jobs == {
        "completeness",
        "silence_checks",
        "ears",
        "daily_close_aggregator",
        "daily_close_alerts",
    }
    assert results["job_seconds"].keys() == results["per_unit_daily_work_us"].keys() == jobs
    province = results["province_extrapolation"]
    assert province["communities"] == PROVINCE_COMMUNITIES
    for job, seconds in results["job_seconds"].items():
        assert seconds > 0, job
        per_unit = results["per_unit_daily_work_us"][job]
        assert per_unit == pytest.approx(seconds / 323 * 1e6, rel=0.01, abs=0.1)
        projected = province["jobs"][job]
        assert projected["seconds"] == pytest.approx(
            per_unit * PROVINCE_COMMUNITIES / 1e6, rel=0.01, abs=0.002
        )
        assert projected["interval_s"] == INTERVALS_S[job]
    assert province["jobs"]["silence_checks"]["interval_s"] == 5.0, "a watchdog pass every 5 s"
