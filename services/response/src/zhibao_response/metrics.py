"""Response metrics (labels: states and levels — never people, never free text)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TASKS_ISSUED = Counter("zhibao_response_tasks_issued_total", "Tasks issued", ["source"])
TASKS_CHANGED = Counter(
    "zhibao_response_task_changes_total", "Task state changes by communities", ["state"]
)
TASKS_OVERDUE = Counter("zhibao_response_tasks_overdue_total", "Tasks announced overdue")
DETAILS_PURGED = Counter(
    "zhibao_response_personal_details_purged_total",
    "Closed tasks whose personal details were deleted",
)
LEVELS_DECLARED = Counter(
    "zhibao_response_levels_declared_total", "Response levels declared (none: lifted)", ["level"]
)
OUTBOX_PENDING = Gauge(
    "zhibao_response_outbox_pending",
    "Task messages written but not yet published (as of the outbox's last pass)",
)
