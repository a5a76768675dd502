"""Intake settings (``ZHIBAO_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from zhibao_shared.events import MAX_BUNDLE_EVENTS
from zhibao_shared.settings import ServiceSettings, refuse_placeholder


class IntakeSettings(ServiceSettings):
    """What intake needs beyond the common settings."""

    intake_port: int = Field(default=8101, ge=1, le=65535)
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for person pseudonyms; generated once into the data dir when unset",
    )
    max_body_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    max_batch_items: int = Field(default=1000, gt=0)
    publish_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest a submission waits for JetStream's acknowledgement, in all",
    )
    retry_after_s: int = Field(default=5, gt=0, description="Retry-After when NATS is down")
    rate_limit_events_per_s: float = Field(
        default=500.0, gt=0, description="Average events per second allowed per token"
    )
    rate_limit_burst: int = Field(default=5000, gt=0, description="Events a token may burst")
    intake_daily_bytes_per_community: int = Field(
        default=100 * 2**20,
        ge=0,
        description=(
            "Bytes a token may have stored a day (its events and its requests' audit "
            "records), for each community its scopes cover: a day's worth at once, then "
            "refilled at a day's average (429 with Retry-After beyond), so one token cannot "
            "fill the events stream nor the audit trail; 0: no budget"
        ),
    )
    intake_bundle_events: int = Field(
        default=200,
        ge=1,
        le=MAX_BUNDLE_EVENTS,
        description=(
            "Most events of one district per bus message; 1 publishes every event on its own "
            "(then JetStream itself answers whether each event is a repeat)"
        ),
    )
    intake_recent_identities: int = Field(
        default=200_000,
        ge=0,
        description=(
            "Identities of stored events this process remembers, to answer a repeat sent in "
            "another bundle as 'duplicate' without storing it again (about 100 bytes each)"
        ),
    )
    audit_refusal_window_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Refusals of whole requests (of callers without a valid token, or of a token past "
            "its limits) are audited as one record per window of this many seconds (per "
            "channel, address, status, reason and token, with a count)"
        ),
    )
    intake_task_catch_up_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description=(
            "How long a task result naming a task intake does not know waits for the tasks "
            "stream; still unknown then: refused (never issued) or, when the stream could not "
            "be read that fast, answered unavailable (503, retry)"
        ),
    )
    intake_fast_path: bool = Field(
        default=True,
        description="Answer POST /v1/events at the ASGI layer (same answers, less CPU)",
    )

    @model_validator(mode="after")
    def _burst_fits_a_batch(self) -> IntakeSettings:
        if self.rate_limit_burst < self.max_batch_items:
            raise ValueError("rate_limit_burst must be at least max_batch_items")
        return self

    @field_validator("pseudonym_key")
    @classmethod
    def _not_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value)
