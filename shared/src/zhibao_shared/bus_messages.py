"""Messages the services build as plain JSON objects, described as models.

The aggregator's rollups, the alerts service's notifications and the services'
audit records are assembled as dicts where they are published; these models
state their shape for the AsyncAPI document (:mod:`zhibao_shared.asyncapi`)
without taking part in building them, so the bytes on the bus are unchanged.
``tests/security/test_asyncapi.py`` validates the messages a running system
publishes against the schemas derived from these models.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zhibao_shared.hierarchy import UNIT_CODE, Level


class _Described(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RollupMessage(_Described):
    """A unit's figures for a day, published when they change (coalesced)."""

    unit: str = Field(pattern=UNIT_CODE, description="Code of the unit (2, 4, 6, 9 or 12 digits)")
    level: Level
    date: dt.date = Field(description="The day, in the district's time zone")
    figures: dict[str, int | float | str | dict[str, int] | None] = Field(
        description=(
            "Every figure of the unit for the day, as GET /v1/units/{code}/rollup answers: "
            "counts (screenings, fevers, screenings_<site>, new_<class>, current_<class>, "
            "cumulative_confirmed, in_isolation, isolation_checks_missed, reports_expected, "
            "reports_missing, tasks_open, needs_open, needs_overdue, ...), medians "
            "(median_hours_to_done, needs_median_hours), reports_due_at, last_new_confirmed "
            "(dates or null), risk_level, and key_persons (the key-person register's "
            "persons by category)"
        )
    )


class AlertmanagerAlert(_Described):
    """One alert of an Alertmanager v4 webhook body."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(
        description="alertname (the rule), severity, unit and the unit's code at each level"
    )
    annotations: dict[str, str] = Field(description="summary, summary_zh and hierarchy")
    starts_at: str = Field(alias="startsAt", description="When the alert fired (ISO 8601)")
    ends_at: str = Field(
        alias="endsAt", description="When it resolved, or 0001-01-01T00:00:00Z while firing"
    )
    generator_url: str = Field(
        alias="generatorURL", description="Where the unit's rollup for the day can be read"
    )
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$", description="Stable per alert")


class AlertNotification(_Described):
    """An alert as an Alertmanager v4 webhook body (the same body webhooks receive).

    Alerts of one unit and rule raised together are grouped: ``alerts`` then
    holds several.
    """

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(alias="groupLabels")
    common_labels: dict[str, str] = Field(alias="commonLabels")
    common_annotations: dict[str, str] = Field(alias="commonAnnotations")
    external_url: str = Field(alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


class AuditedEvent(_Described):
    """One submitted event in an audit record: its identity and what became of it."""

    status: str = Field(description="accepted, duplicate, rejected or unavailable")
    code: str | None = Field(default=None, description="Why it was rejected")
    id: str | None = None
    source: str | None = None
    subject: str | None = Field(default=None, description="The community (masked if refused)")
    type: str | None = None
    time: str | None = Field(default=None, description="The event's time, as submitted")


class AuditRecord(_Described):
    """Who submitted what, when, over which channel; no personal data.

    A message holds one or more records as JSON lines (one object a line).
    """

    at: str = Field(description="When intake answered (ISO 8601, UTC)")
    channel: Literal["http", "nats"]
    remote: str | None = Field(description="The caller's address (HTTP), else null")
    token: str | None = Field(description="Id of the caller's token, null if none was valid")
    token_name: str | None
    person: str | None = Field(
        default=None, description="The person a personal token belongs to, when known"
    )
    scopes: list[str] | None = Field(
        default=None,
        description="The units the caller's token covers (an event refused as forbidden "
        "is filed under them, not under the unit it named); null without a valid token",
    )
    status: int = Field(description="The HTTP-equivalent status answered")
    events: list[AuditedEvent] | None = Field(
        default=None, description="Per submitted event, in submission order (when admitted)"
    )


class RefusalTallyRecord(_Described):
    """Refusals of whole requests in one window, counted (not one by one): of callers
    without a valid token, or of one token (its role, its rate limit, its storage budget)."""

    at: str = Field(description="The window's end (ISO 8601, UTC)")
    from_: str = Field(alias="from", description="The window's start")
    channel: Literal["http", "nats"]
    remote: str | None
    token: str | None = Field(description="Id of the token refused, null if none was valid")
    token_name: str | None
    person: str | None = Field(
        default=None, description="The person a personal token belongs to, when known"
    )
    scopes: list[str] | None = Field(
        default=None, description="The units the token covers; null without a valid token"
    )
    status: int = Field(description="The HTTP-equivalent status answered (401, 403, 429, ...)")
    reason: str
    count: int = Field(ge=1)


class ActionRecord(_Described):
    """An action a service did for someone: who, what, for which unit; no personal data."""

    at: str = Field(description="When it was done (ISO 8601, UTC)")
    service: str = Field(description="The service that did it")
    action: str = Field(
        pattern=r"^[a-z_]+\.[a-z_]+$",
        description="What was done, in the past tense: alert.acknowledged, alert.resolved, "
        "silence.created, silence.expired, task.issued, task.assigned, task.transferred, "
        "level.declared, level.lifted, point.declared, point.lifted, audit.read, ...",
    )
    token: str | None = Field(description="Id of the acting token")
    token_name: str | None
    person: str | None = Field(description="The acting person, when known")
    unit: str | None = Field(description="The unit (12-digit or shorter code) concerned")
    target: str | None = Field(description="The alert, task, silence, point or token acted on")
    detail: dict[str, object] = Field(description="A short detail (no personal data)")


class SubmitProblem(_Described):
    """The reply to a zhibao.intake.submit request refused as a whole."""

    detail: str
    status: int = Field(description="The HTTP-equivalent status (401, 413, 429, 503...)")
    retry_after: int | None = Field(default=None, description="Seconds to wait before retrying")
