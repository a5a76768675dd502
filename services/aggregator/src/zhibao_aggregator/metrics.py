"""The aggregator's Prometheus metrics (batch size, latency and lag are the consumer's).

Labels carry event types, never units' people.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_APPLIED = Counter(
    "zhibao_aggregator_events_applied_total", "Events applied to the counters", ["type"]
)
DUPLICATES_SKIPPED = Counter(
    "zhibao_aggregator_duplicates_skipped_total", "Deliveries of events already applied"
)
COMMIT_SECONDS = Histogram(
    "zhibao_aggregator_commit_seconds",
    "Time to apply and commit one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROLLUPS_PUBLISHED = Counter(
    "zhibao_aggregator_rollups_published_total", "Rollups published to NATS", ["level"]
)
ROLLUPS_FAILED = Counter(
    "zhibao_aggregator_rollups_failed_total",
    "Rollup publications that failed (the unit stays due: the next flush tries again)",
)
ROLLUP_WAIT = Histogram(
    "zhibao_aggregator_rollup_wait_seconds",
    "Seconds from a unit's first change since its last rollup to the next one published",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TASK_MESSAGES_APPLIED = Counter(
    "zhibao_aggregator_task_messages_applied_total",
    "Task messages applied to the task rollups (redeliveries not counted)",
)
TASK_MESSAGES_SKIPPED = Counter(
    "zhibao_aggregator_task_messages_skipped_total",
    "Messages on the task subjects that were not task messages (logged, dropped)",
)
CORRECTIONS_HELD = Counter(
    "zhibao_aggregator_corrections_held_total",
    "Corrections that arrived before the event they correct (held until it arrives)",
)
CORRECTIONS_IGNORED = Counter(
    "zhibao_aggregator_corrections_ignored_total",
    "Corrections ignored: a type other than the event's, an event that is not correctable, "
    "or one applied before footprints were kept",
    ["reason"],
)
