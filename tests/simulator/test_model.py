"""The simulator as a library: deterministic, its ground truth exact, the outbreaks real,
every community of the city reporting."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from zhibao_client.simulator import Simulation, SimulationConfig, deliver
from zhibao_client.simulator.truth import GroundTruth
from zhibao_shared.events import REPORTED_EVENT
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.places import PlaceMatch, load_places

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime.now(ZONE).date() - timedelta(days=20)
SMALL: dict[str, Any] = {"days": 12, "start": START, "scale": 0.0005}


def generate(**overrides: Any) -> tuple[list[dict[str, Any]], GroundTruth]:
    simulation = Simulation(SimulationConfig(**{**SMALL, **overrides}))
    return list(simulation.events()), simulation.truth


@pytest.fixture(scope="module")
def outbreak_run() -> tuple[list[dict[str, Any]], GroundTruth]:
    return generate(seed=3, outbreak=True)


def local_day(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["time"]).astimezone(ZONE).date()


def test_the_same_seed_gives_the_same_events_and_another_seed_different_ones() -> None:
    first, _ = generate(seed=5)
    again, _ = generate(seed=5)
    other, _ = generate(seed=6)
    assert first == again
    assert first != other
    assert len({(e["source"], e["id"]) for e in first}) == len(first), "ids are unique"


def test_events_come_in_time_order_and_satisfy_the_contract(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, _ = outbreak_run
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times)
    for event in events:
        REPORTED_EVENT.validate_python(event)
    assert {e["type"] for e in events} == {
        "zhibao.screening.v1",
        "zhibao.case.v1",
        "zhibao.isolation.v1",
        "zhibao.daily_report.v1",
        "zhibao.keyperson.v1",
        "zhibao.need.v1",
    }


def registered(event: dict[str, Any]) -> PlaceMatch:
    """The registered places an event names, as intake resolves them."""
    data = event["data"]
    return load_places().locate(
        event["subject"], data.get("place"), data.get("compound"), data.get("building")
    )


def test_residents_live_in_registered_places_named_by_id_or_now_and_then_by_labels(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, _ = outbreak_run
    homes = [e for e in events if e["type"] in ("zhibao.screening.v1", "zhibao.case.v1")]
    by_labels = [e for e in homes if "place" not in e["data"]]
    assert 0 < len(by_labels) < 0.1 * len(homes)
    for event in homes:
        found = registered(event)
        where = found.compound if event["data"].get("site") == "gate" else found.building
        assert where is not None and where[:12] == event["subject"], event


def test_the_ground_truth_equals_counting_the_events(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, truth = outbreak_run
    counted: Counter[tuple[str, date, str]] = Counter()
    for event in events:
        key = (event["subject"], local_day(event))
        data = event["data"]
        counted[(*key, "events")] += 1
        if event["type"] == "zhibao.screening.v1":
            counted[(*key, "screenings")] += 1
            counted[(*key, "fevers")] += data["temperature_c"] >= 37.3
            counted[(*key, "travel_flags")] += data.get("travel_from_risk_area", False)
        elif event["type"] == "zhibao.case.v1":
            counted[(*key, data["classification"])] += 1
        elif event["type"] == "zhibao.isolation.v1":
            counted[(*key, "isolation_" + data["action"])] += 1
    expected: Counter[tuple[str, date, str]] = Counter()
    for (community, day), totals in truth.days.items():
        for name in ("events", "screenings", "fevers", "travel_flags"):
            expected[(community, day, name)] = getattr(totals, name)
        for classification, n in totals.new_cases.items():
            expected[(community, day, classification)] = n
        for action, n in totals.isolation.items():
            expected[(community, day, "isolation_" + action)] = n
    assert +counted == +expected
    assert truth.total("screenings") > 1000 and truth.total("fevers") > 0


def test_daily_reports_declare_the_true_counts_and_some_are_late_or_missing(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, truth = outbreak_run
    reports = [e for e in events if e["type"] == "zhibao.daily_report.v1"]
    for report in reports:
        day = date.fromisoformat(report["data"]["date"])
        totals = truth.at(report["subject"], day)
        counts = report["data"]["counts"]
        assert (counts["screenings"], counts["fevers"]) == (totals.screenings, totals.fevers)
        assert counts["new_confirmed"] == totals.new_cases["confirmed"]
        assert totals.reported
    late = [r for r in reports if local_day(r) > date.fromisoformat(r["data"]["date"])]
    assert late and all(
        truth.at(r["subject"], local_day(r) - timedelta(1)).reported_late for r in late
    )
    silent = SimulationConfig().silent_community
    last_day = START + timedelta(days=11)
    assert not truth.at(str(silent), last_day).reported
    assert not [e for e in events if e["subject"] == silent and local_day(e) == last_day]


def test_the_outbreak_is_a_fever_cluster_in_one_building_then_confirmed_cases(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, truth = outbreak_run
    config = SimulationConfig(**SMALL, outbreak=True)
    community, first_day = config.outbreak_community, START + timedelta(days=config.outbreak_start)
    fevers_by_building = Counter(
        registered(e).building
        for e in events
        if e["type"] == "zhibao.screening.v1"
        and e["subject"] == community
        and e["data"]["temperature_c"] >= 37.3
        and local_day(e) == first_day
    )
    (place, fevers), *_ = fevers_by_building.most_common()
    assert fevers >= 3 and place is not None, "three or more fevers in one building in a day"
    confirmed_after = [
        e
        for e in events
        if e["type"] == "zhibao.case.v1"
        and e["subject"] == community
        and e["data"]["classification"] == "confirmed"
        and registered(e).building == place
        and local_day(e) > first_day
    ]
    assert len({local_day(e) for e in confirmed_after}) >= 2, "confirmed over several days"
    rules = {a.rule for a in truth.expected_alerts}
    assert {"fever_cluster", "ears_fevers", "immediate_confirmed", "immediate_breach"} <= rules
    assert {"silence", "missed_check"} <= rules
    # the cluster is expected where the alerts service keys it: the registered building
    clusters = [a for a in truth.expected_alerts if a.rule == "fever_cluster"]
    assert [a.reason for a in clusters if a.unit == community] == [place]
    breaches = [
        e for e in events if e["type"] == "zhibao.isolation.v1" and e["data"]["action"] == "breach"
    ]
    assert [b["subject"] for b in breaches] == [site for site, _day in config.outbreak_sites]
    _, calm = generate(seed=3)
    assert "fever_cluster" not in {a.rule for a in calm.expected_alerts}


def test_nothing_after_until_is_generated_or_counted() -> None:
    until = datetime.combine(START + timedelta(days=5), datetime.min.time(), ZONE) + timedelta(
        hours=12
    )
    events, truth = generate(seed=2, until=until)
    assert max(datetime.fromisoformat(e["time"]) for e in events) <= until
    assert truth.events == len(events)


def test_delivery_with_duplicates_and_reordering_keeps_every_event() -> None:
    events, _ = generate(seed=4, days=2)
    delivered = list(deliver(events, seed=9, duplicate_rate=0.05, reorder_window=30))
    keys = [(e["source"], e["id"]) for e in delivered]
    assert set(keys) == {(e["source"], e["id"]) for e in events}
    assert len(keys) > len(events), "some were delivered twice"
    assert keys != [(e["source"], e["id"]) for e in events][: len(keys)], "order changed"
    assert delivered == list(deliver(events, seed=9, duplicate_rate=0.05, reorder_window=30))


def test_every_community_of_the_city_closes_every_day_but_the_silent_one(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, truth = outbreak_run
    city = load_registry().communities_under("6401")
    assert len(city) == 323
    reported = Counter(
        (e["subject"], e["data"]["date"]) for e in events if e["type"] == "zhibao.daily_report.v1"
    )
    silent = SimulationConfig().silent_community
    days = [START + timedelta(days=n) for n in range(12)]
    for community in city:
        for n, day in enumerate(days):
            if community.code == silent and n == 9:
                continue  # its last report may be late: after it fell silent, never sent
            sends = community.code != silent or n < 9
            assert reported[(community.code, day.isoformat())] == int(sends), (community, day)
            assert truth.at(community.code, day).reported == sends
    districts = {e["subject"][:6] for e in events if e["type"] == "zhibao.screening.v1"}
    assert districts == {"640104", "640105", "640106", "640121", "640122", "640181"}


def test_the_second_outbreak_is_in_another_district_days_later(
    outbreak_run: tuple[list[dict[str, Any]], GroundTruth],
) -> None:
    events, truth = outbreak_run
    config = SimulationConfig(**SMALL, outbreak=True)
    (first, first_day), (second, second_day) = config.outbreak_sites
    assert first[:6] == "640106" and second[:6] != first[:6]
    assert second_day == first_day + config.second_outbreak_after
    clusters = {a.unit: a.day for a in truth.expected_alerts if a.rule == "fever_cluster"}
    assert clusters == {
        first: START + timedelta(days=first_day),
        second: START + timedelta(days=second_day),
    }
    confirmed = Counter(
        e["subject"]
        for e in events
        if e["type"] == "zhibao.case.v1" and e["data"]["classification"] == "confirmed"
    )
    assert confirmed[first] >= 4 and confirmed[second] >= 4
    alone, _ = generate(seed=3, outbreak=True, second_outbreak_community=None)
    assert len(alone) < len(events)
    district, _ = generate(seed=3, area="640106")
    assert {e["subject"][:6] for e in district} == {"640106"}
