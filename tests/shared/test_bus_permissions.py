"""NATS subject-wildcard reasoning behind the AsyncAPI document's permissions."""

from __future__ import annotations

import pytest

from zhibao_shared.bus_access import bus_user
from zhibao_shared.bus_permissions import covers, overlap, publishable, subscribable


@pytest.mark.parametrize(
    ("allowed", "pattern", "expected"),
    [
        ("zhibao.events.>", "zhibao.events.*.*.*", True),
        ("zhibao.events.>", "zhibao.events", False),
        ("zhibao.*.x", "zhibao.events.x", True),
        ("zhibao.*.x", "zhibao.>", False),
        ("zhibao.events.640106.>", "zhibao.events.*.bundle", False),
        ("zhibao.intake.submit", "zhibao.intake.submit", True),
        ("zhibao.intake.submit", "zhibao.intake.*", False),
        (">", "_INBOX.abc", True),
    ],
)
def test_covers_means_every_subject_of_the_pattern_is_allowed(
    allowed: str, pattern: str, expected: bool
) -> None:
    assert covers(allowed, pattern) is expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (
            "zhibao.deadletter.aggregator.>",
            "zhibao.deadletter.*.>",
            "zhibao.deadletter.aggregator.>",
        ),
        ("zhibao.events.>", "zhibao.events.*.bundle", "zhibao.events.*.bundle"),
        ("zhibao.rollups.>", "zhibao.alerts.*.*", None),
        ("zhibao.audit.*.*", "zhibao.audit.intake", None),
        ("a.*", "*.b", "a.b"),
    ],
)
def test_overlap_is_the_subjects_both_match(first: str, second: str, expected: str | None) -> None:
    assert overlap(first, second) == expected


def test_a_service_may_park_only_its_own_dead_letters() -> None:
    pattern = "zhibao.deadletter.*.>"
    assert publishable(bus_user("aggregator"), pattern) == ["zhibao.deadletter.aggregator.>"]
    assert publishable(bus_user("intake"), pattern) == []
    assert publishable(bus_user("ops"), pattern) == [pattern]


def test_the_ingress_user_reads_its_own_inbox_only() -> None:
    assert subscribable(bus_user("community"), "_INBOX.intake.>") == []
    assert subscribable(bus_user("community"), "_INBOX.>") == ["_INBOX.community.>"]
    assert subscribable(bus_user("community"), "_INBOX.*") == []
    assert subscribable(bus_user("dashboard"), "zhibao.alerts.*.*") == ["zhibao.alerts.*.*"]
