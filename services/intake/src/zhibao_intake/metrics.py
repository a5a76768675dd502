"""Intake's Prometheus metrics. Labels carry types and reasons, never people."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter(
    "zhibao_intake_events_accepted_total", "Events stored in JetStream", ["type"]
)
EVENTS_DUPLICATE = Counter(
    "zhibao_intake_events_duplicate_total", "Events JetStream already had (retries)", ["type"]
)
EVENTS_REJECTED = Counter(
    "zhibao_intake_events_rejected_total", "Events refused, by reason", ["reason"]
)
EVENTS_UNAVAILABLE = Counter(
    "zhibao_intake_events_unavailable_total", "Events not stored because NATS was unreachable"
)
SUBMISSIONS_REFUSED = Counter(
    "zhibao_intake_submissions_refused_total",
    "Whole submissions refused before per-item validation",
    ["reason"],
)
PUBLISH_LATENCY = Histogram(
    "zhibao_intake_publish_seconds",
    "Time from publish to JetStream acknowledgement",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BUNDLE_EVENTS = Histogram(
    "zhibao_intake_message_events",
    "Events per bus message (1 for a lone event, more for a bundle)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)


@cache
def labelled(counter: Counter, value: str) -> Counter:
    """``counter.labels(value)``, looked up once a value: ``labels`` takes a lock and checks
    its arguments at every call, for every event. Values are types and reasons: few."""
    return counter.labels(value)
