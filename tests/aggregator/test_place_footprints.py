"""Footprints keep an event's registered places, and those stored before places existed
still decode (their events stay correctable after the upgrade, counting no places)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from zhibao_aggregator.domain import place_figures as pf
from zhibao_aggregator.domain.corrections import Footprint

MOMENT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
FENGLIN = "640106001001-C001"


def test_a_footprint_stored_before_places_decodes_without_places() -> None:
    at = "2026-11-30T02:00:00+00:00"
    before = f"screening|{at}|{at}|2026-11-30|events,screenings|"
    found = Footprint.decode(before)
    assert found.metrics == ("events", "screenings")
    assert found.places == ()
    assert pf.placed("640106001001", found.day, found.metrics, found.places) == {}


def test_places_survive_encoding_and_count_where_the_event_was() -> None:
    mark = Footprint(
        "screening",
        MOMENT,
        MOMENT,
        date(2026, 11, 30),
        ("events", "screenings", "fevers", "late_events"),
        "",
        (f"{FENGLIN}-B003", FENGLIN, "640106001001-G002"),
    )
    assert Footprint.decode(mark.encode()) == mark
    change = pf.placed("640106001001", mark.day, mark.metrics, mark.places)
    communities, places = pf.split(change)
    assert communities == {}
    assert places[(FENGLIN, mark.day, "fevers")] == 1
    assert (FENGLIN, mark.day, "late_events") not in places, "not a place figure"
    unregistered = pf.placed("640106001001", mark.day, mark.metrics, (pf.UNREGISTERED_MARK,))
    assert pf.split(unregistered)[1] == {("640106001001", mark.day, "unregistered"): 1}
    assert pf.placed("640106001001", mark.day, (), mark.places) == {}, "retracted"
