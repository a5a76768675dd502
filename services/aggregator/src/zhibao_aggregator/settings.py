"""Aggregator settings (``ZHIBAO_*`` environment variables)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zhibao_shared.hierarchy import UNIT_CODE, Level
from zhibao_shared.settings import ServiceSettings, nats_servers, sqlite_url

_WEIGHT = "Weight of this component in the quality scorecard's composite score (README)"


class AggregatorSettings(ServiceSettings):
    """What the aggregator needs beyond the common settings."""

    aggregator_port: int = Field(default=8102, ge=1, le=65535)
    aggregator_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics only on this port (for Prometheus), not on the HTTP port "
        "that also serves the public pages; on the HTTP port when unset",
    )
    aggregator_database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; SQLite in the data dir when unset"
    )
    aggregator_districts: list[str] = Field(
        default_factory=list,
        description="Only consume these district codes (partitioning); all when empty",
    )
    aggregator_durable: str = Field(default="aggregator", pattern=r"^[A-Za-z0-9_-]+$")
    aggregator_batch_size: int = Field(
        default=5000,
        gt=0,
        le=20000,
        description="Most events applied per transaction. A batch fills only when events "
        "wait (a fetch takes what is there within 50 ms), so light load is not delayed; "
        "under load the counters a batch touches are written once for all its events",
    )
    aggregator_rebuild_batch_size: int = Field(
        default=20_000,
        gt=0,
        le=100_000,
        description="Events per transaction of a rebuild (its counter changes are held "
        "across transactions, see aggregator_rebuild_held_keys)",
    )
    aggregator_rebuild_held_keys: int = Field(
        default=1_500_000,
        gt=0,
        description="Counter changes (community and place keys) each of a rebuild's "
        "processes holds in memory before writing them (more: fewer writes of the same "
        "rows, more memory; about 100 bytes each). A million events over 400 days make "
        "about 1.15 million, shared between the processes.",
    )
    aggregator_rebuild_processes: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Processes replaying the events stream in a rebuild (the command and "
        "helpers it starts), each fetching its share from the one durable consumer: one "
        "interpreter uses one core, and a rebuild is CPU-bound. On SQLite they write in "
        "turn, so more than two gain little",
    )
    aggregator_max_deliver: int = Field(default=5, ge=2)
    aggregator_ack_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="Unacked messages (e.g. of a killed instance) are redelivered after this",
    )
    aggregator_publish_interval_s: float = Field(
        default=0.5, gt=0, description="A unit's rollup is published at most once per interval"
    )
    aggregator_publish_max_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description=(
            "The most of its time the rollup publisher may take: after a flush of t seconds it"
            " waits at least t x (1 - share) / share, so heavy load slows the pushes, not counting"
        ),
    )
    alerts_url: str | None = Field(
        default="http://127.0.0.1:8103",
        description="The alerts service the dashboard's alert panel talks to; none hides it",
    )
    dashboard_nats_url: str | None = Field(
        default=None,
        description="NATS URL of the page's live feed (a read-only user); ZHIBAO_NATS_URL if unset",
    )
    dashboard_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between the live stream's heartbeats"
    )
    dashboard_token_recheck_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds between checks that a live stream's token is still valid; "
        "a revoked or expired token's stream ends",
    )
    risk_rule: Literal["national_2020", "new_cases"] = Field(
        default="national_2020",
        description="Risk zoning rule: national_2020 (the State Council rule for counties of "
        "17 Feb 2020: cumulative confirmed and clusters) or new_cases (new confirmed in the "
        "window against ZHIBAO_RISK_MEDIUM_AT / ZHIBAO_RISK_HIGH_AT)",
    )
    risk_window_days: int = Field(default=14, gt=0, le=90)
    risk_medium_at: int = Field(
        default=1, gt=0, description="new_cases rule: new confirmed in window → medium"
    )
    risk_high_at: int = Field(
        default=10, gt=0, description="new_cases rule: new confirmed in window → high"
    )
    risk_cumulative_above: int = Field(
        default=50,
        ge=0,
        description="national_2020 rule: more cumulative confirmed than this (and a cluster "
        "in the window) → high",
    )
    risk_cluster_min_cases: int = Field(
        default=2,
        ge=2,
        le=1000,
        description="national_2020 rule: persons confirmed in the window in one compound (or "
        "building) that make a cluster",
    )
    point_lift_after_days: int = Field(
        default=14,
        gt=0,
        le=90,
        description="An epidemic point's planned lifting: this many days after the later of "
        "its start and the last case there",
    )
    small_cell_threshold: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Public summaries suppress counts from 1 to this minus 1 (and complements "
        "that would give them away); 1 suppresses nothing",
    )
    public_release_after: timedelta = Field(
        default=timedelta(days=1, hours=10),
        description="Day D's public figures are released this long after the start of D "
        "(district time) and never change after; default next day 10:00. ISO 8601; below P1D "
        "(tests, demos) a day is released before it ends, with what was counted by then",
    )
    public_min_level: Level = Field(
        default=Level.DISTRICT,
        description="The lowest level with a token-less public summary (city, district, "
        "street or community)",
    )

    public_home: str | None = Field(
        default=None,
        pattern=UNIT_CODE,
        description="The unit the public page /public starts at; the top unit below the "
        "province (the city) when unset",
    )

    quality_case_class: Literal["A", "B"] = Field(
        default="A",
        description="The statutory class the reported disease is managed as: A (class A and "
        "diseases managed as class A; COVID-19 is) or B; sets the case-report limit",
    )
    quality_class_a_limit: timedelta = Field(
        default=timedelta(hours=2),
        gt=timedelta(0),
        description="Case-report limit of class A (ISO 8601): from classification to receipt",
    )
    quality_class_b_limit: timedelta = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="Case-report limit of class B (ISO 8601): from classification to receipt",
    )
    quality_weight_on_time: float = Field(default=40.0, ge=0, description=_WEIGHT)
    quality_weight_timely_events: float = Field(default=15.0, ge=0, description=_WEIGHT)
    quality_weight_accepted: float = Field(default=10.0, ge=0, description=_WEIGHT)
    quality_weight_uncorrected: float = Field(default=5.0, ge=0, description=_WEIGHT)
    quality_weight_case_lag: float = Field(default=20.0, ge=0, description=_WEIGHT)
    quality_weight_consistency: float = Field(default=10.0, ge=0, description=_WEIGHT)
    aggregator_templates_dir: Path | None = Field(
        default=None,
        description="Directory of report template files (<id>.yaml); when unset, the "
        "templates shipped with the sample registry if that is the registry in use, else none",
    )

    @field_validator("dashboard_nats_url")
    @classmethod
    def _servers_listed(cls, value: str | None) -> str | None:
        if value is not None:
            nats_servers(value)
        return value

    @field_validator("public_release_after")
    @classmethod
    def _not_before_the_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("a day's figures are released at or after its start")
        return value

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> AggregatorSettings:
        if self.risk_high_at < self.risk_medium_at:
            raise ValueError("risk_high_at must be at least risk_medium_at")
        return self

    @model_validator(mode="after")
    def _some_quality_weight(self) -> AggregatorSettings:
        if not any(value > 0 for value in self.quality_weights().values()):
            raise ValueError("at least one ZHIBAO_QUALITY_WEIGHT_* must be positive")
        return self

    def quality_weights(self) -> dict[str, float]:
        """The scorecard's weights by component."""
        prefix = "quality_weight_"
        return {
            name.removeprefix(prefix): float(getattr(self, name))
            for name in type(self).model_fields
            if name.startswith(prefix)
        }

    @property
    def case_report_limit(self) -> timedelta:
        """The statutory case-report limit of the configured class."""
        if self.quality_case_class == "A":
            return self.quality_class_a_limit
        return self.quality_class_b_limit

    @property
    def report_due_after(self) -> timedelta:
        """Deprecated name of the shared ``daily_report_deadline``
        (``ZHIBAO_REPORT_DUE_AFTER`` is still read as ``ZHIBAO_DAILY_REPORT_DEADLINE``)."""
        return self.daily_report_deadline

    def database_url(self) -> str:
        """The configured database URL or the embedded SQLite default."""
        return self.aggregator_database_url or sqlite_url(self.data_dir, "aggregator")
