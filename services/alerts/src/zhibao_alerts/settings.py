"""Alerts settings (``ZHIBAO_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from zhibao_shared.settings import ServiceSettings, sqlite_url


class AlertsSettings(ServiceSettings):
    """What the alerts service needs beyond the common settings."""

    alerts_port: int = Field(default=8103, ge=1, le=65535)
    alerts_database_url: str | None = Field(default=None, description="SQLite when unset")
    alerts_rules_path: Path | None = Field(default=None, description="Shipped sample when unset")
    alerts_oncall_path: Path | None = Field(default=None, description="Shipped sample when unset")
    alerts_durable: str = Field(default="alerts", pattern=r"^[A-Za-z0-9_-]+$")
    alerts_districts: list[str] = Field(
        default_factory=list,
        description="Only consume these district codes (partitioning; partitions share one "
        "PostgreSQL database); all when empty",
    )
    alerts_batch_size: int = Field(
        default=1000,
        gt=0,
        le=5000,
        description="Events applied per transaction: a batch's rules (EARS per series, "
        "the place windows, the ledger) cost about the same for 200 events as for 1,000",
    )
    alerts_ack_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="Unacked events (e.g. of a killed instance) are redelivered after this",
    )
    alerts_tasks_batch_size: int = Field(
        default=200, gt=0, le=5000, description="Task messages applied per transaction"
    )
    alerts_tasks_fetch_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="How long a fetch of task messages waits to fill a batch (the latency "
        "of a task_overdue alert; an idle consumer asks this often)",
    )
    alerts_reload_s: float = Field(default=2.0, gt=0, description="Config files polled this often")
    alerts_lock_wait_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="An API write retries this long while SQLite is locked, then answers 503",
    )
    alerts_page_horizon_hours: float = Field(
        default=24,
        ge=0,
        description="An alert raised from events (case, cluster, EARS) that intake received "
        "more than this many hours ago is recorded as expired and not paged: a fresh "
        "database reading the stream's history pages only what is still actionable",
    )
    alerts_require_personal_tokens: bool = Field(
        default=True,
        description="Acknowledging, resolving and silencing need a personal token (one "
        "made with `zhibao token create --person`), so that a person, not a shared "
        "system token, answers for them; a shared token is refused 403",
    )
    alerts_keyperson_contact_hours: float = Field(
        default=24,
        gt=0,
        le=24 * 14,
        description="A key person in isolation, an epidemic point or a sealed building "
        "without contact, check or delivery for this many hours (event time) is alerted on",
    )
    aggregator_url: str = "http://127.0.0.1:8102"

    def database_url(self) -> str:
        """The configured database URL or the embedded SQLite default."""
        return self.alerts_database_url or sqlite_url(self.data_dir, "alerts")
