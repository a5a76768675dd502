"""Alerts metrics (labels: channels, states and rules — never people)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
ALERTS_OPEN = Gauge("zhibao_alerts_open", "Alerts firing or acknowledged", ["state"])
