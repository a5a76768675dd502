"""Response service settings (``ZHIBAO_*`` environment variables)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from zhibao_response.domain.needs import DEFAULT_NEED_LIMITS, NeedLimits, parse_need_limits
from zhibao_shared.settings import ServiceSettings, refuse_placeholder, sqlite_url
from zhibao_shared.task_events import TASK_KIND


def _kind_list(value: str) -> list[str]:
    return [kind.strip() for kind in value.split(",") if kind.strip()]


class ResponseSettings(ServiceSettings):
    """What the response service needs beyond the common settings."""

    response_port: int = Field(default=8104, ge=1, le=65535)
    response_database_url: str | None = Field(default=None, description="SQLite when unset")
    response_key: SecretStr | None = Field(
        default=None,
        description="Key encrypting tasks' personal details at rest; generated once into "
        "the data dir (response.key, owner-only) when unset",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for person pseudonyms: intake's (the same variable); "
        "the data dir's pseudonym.key when unset",
    )
    response_purge_after_days: float = Field(
        default=30.0,
        ge=0,
        description="A closed task's personal details are deleted this many days after it closed",
    )
    response_max_tasks: int = Field(
        default=10_000, gt=0, le=100_000, description="Most tasks one POST /v1/tasks may issue"
    )
    response_max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    response_playbook_path: Path | None = Field(
        default=None, description="Response-level playbook YAML; the shipped sample when unset"
    )
    response_reload_s: float = Field(default=2.0, gt=0, description="Playbook polled this often")
    response_check_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="Overdue tasks and expired details are looked for this often",
    )

    intake_url: str = Field(
        default="http://127.0.0.1:8101",
        description="Intake's address: the worker page's task results are forwarded there",
    )

    response_visit_required_kinds: str = Field(
        default="verify_companion",
        description="Task kinds (comma-separated) a phone-only result may not close: "
        "they need a visit",
    )

    response_need_limits: str = Field(
        default=DEFAULT_NEED_LIMITS,
        description="How many hours a need may wait before its task is overdue: "
        "comma-separated <urgency>=<hours> or <urgency>.<category>=<hours> (the category's "
        "own limit wins)",
    )

    @field_validator("response_need_limits")
    @classmethod
    def _limits(cls, value: str) -> str:
        parse_need_limits(value)
        return value

    def need_limits(self) -> NeedLimits:
        """The limits of ZHIBAO_RESPONSE_NEED_LIMITS."""
        return parse_need_limits(self.response_need_limits)

    @field_validator("response_visit_required_kinds")
    @classmethod
    def _kinds(cls, value: str) -> str:
        for kind in _kind_list(value):
            if not re.fullmatch(TASK_KIND, kind):
                raise ValueError(f"{kind!r} is not a task kind (lowercase letters, digits, _)")
        return value

    def visit_required_kinds(self) -> frozenset[str]:
        """The kinds of ZHIBAO_RESPONSE_VISIT_REQUIRED_KINDS."""
        return frozenset(_kind_list(self.response_visit_required_kinds))

    @field_validator("response_key", "pseudonym_key")
    @classmethod
    def _not_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value)

    def database_url(self) -> str:
        """The configured database URL or the embedded SQLite default."""
        return self.response_database_url or sqlite_url(self.data_dir, "response")
