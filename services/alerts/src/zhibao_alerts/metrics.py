"""Alerts metrics (labels: channels, states, rules and severities — never people)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS_SENT = Counter(
    "zhibao_alerts_notifications_sent_total", "Notifications a receiver accepted (2xx)", ["channel"]
)
NOTIFICATIONS_FAILED = Counter(
    "zhibao_alerts_notifications_failed_total",
    "Delivery attempts that failed (will be retried until the attempt cap)",
    ["channel"],
)
NOTIFICATIONS_GAVE_UP = Counter(
    "zhibao_alerts_notifications_gave_up_total",
    "Notifications abandoned after the cap",
    ["channel"],
)
ROBOT_MESSAGES = Counter(
    "zhibao_alerts_robot_messages_total",
    "Messages sent to chat robots (each carries one or more alerts' notifications)",
    ["channel"],
)
NOTIFICATIONS_PACED = Counter(
    "zhibao_alerts_notifications_paced_total",
    "Notifications held for the next minute: their robot had had its messages a minute",
    ["channel"],
)
NOTIFICATION_LATENCY = Histogram(
    "zhibao_alerts_notification_latency_seconds",
    "From a notification being queued to its receiver accepting it (retries included)",
    ["channel"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# The gauges read from the database show the same figures on every instance: take the
# max across instances, not the sum.
NOTIFICATIONS_PENDING = Gauge(
    "zhibao_alerts_notifications_pending",
    "Notifications not delivered yet: due, held for a robot's next minute, or waiting for "
    "a retry (no sample for a channel with none; refreshed after a pass that changed "
    "anything, else every 30 s; the same on every instance)",
    ["channel"],
)
OLDEST_PENDING = Gauge(
    "zhibao_alerts_notification_oldest_pending_timestamp_seconds",
    "When the oldest notification not delivered yet was queued, Unix time (no sample for "
    "a channel with none; a value that stops being refreshed keeps ageing)",
    ["channel"],
)
LAST_PASS = Gauge(
    "zhibao_alerts_dispatcher_last_pass_timestamp_seconds",
    "When this instance's dispatcher last completed a pass, Unix time (the service's start "
    "until its first pass)",
)
ALERTS_OPEN = Gauge(
    "zhibao_alerts_open", "Alerts firing, acknowledged or silenced", ["rule", "state"]
)
ALERTS_RAISED = Counter("zhibao_alerts_raised_total", "Alerts opened", ["rule", "severity"])
TIME_TO_ACKNOWLEDGE = Histogram(
    "zhibao_alerts_time_to_acknowledge_seconds",
    "From an alert firing to someone acknowledging it",
    ["severity"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
CONFIG_REFUSED = Gauge(
    "zhibao_alerts_config_refused",
    "1 while the last change of this configuration file was refused (the previous one is "
    "in force), else 0",
    ["file"],
)
CORRECTIONS_APPLIED = Counter(
    "zhibao_alerts_corrections_applied_total",
    "Corrections that decided their event (retract or replace; a later one decides)",
    ["action"],
)
CORRECTIONS_IGNORED = Counter(
    "zhibao_alerts_corrections_ignored_total",
    "Corrections ignored (type_mismatch: they name another type than their event's)",
    ["reason"],
)
CORRECTIONS_HELD = Counter(
    "zhibao_alerts_corrections_held_total",
    "Corrections that arrived before their event (held until it arrives)",
)
