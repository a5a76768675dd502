"""Raising alerts: a trigger opens a new alert or counts again on the open one.

Runs inside the caller's transaction, so an alert and its outbox rows are
committed together with the events that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts import metrics, store
from zhibao_alerts.domain.config import OnCall
from zhibao_alerts.domain.silences import silenced_by
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.payloads import alertmanager, encode, labels, robot_body
from zhibao_shared.hierarchy import CODE_LENGTH, Registry
from zhibao_shared.subjects import alert_subject


@dataclass(frozen=True)
class Routing:
    """Who hears about alerts: the on-call configuration and where rollups live."""

    oncall: OnCall
    registry: Registry
    aggregator_url: str


def unit_at(unit: str, level: Any) -> str:
    """The ancestor of ``unit`` at ``level`` (its code prefix)."""
    return unit[: CODE_LENGTH[level]]


def notifications_for_step(
    alert: Any, step: int, reason: str, routing: Routing, now: datetime
) -> list[dict[str, Any]]:
    """Outbox rows for one escalation step: that level's on-call, and for step 0 the
    catch-all webhooks and the NATS subject."""
    bodies = {
        "webhook": encode(alertmanager(alert, routing.registry, routing.aggregator_url)),
        "nats": encode(alertmanager(alert, routing.registry, routing.aggregator_url)),
        **{
            channel: encode(robot_body(channel, alert, routing.aggregator_url))
            for channel in ("dingtalk", "wecom", "feishu", "email")
        },
    }
    rows: list[tuple[str, str]] = []
    policy = routing.oncall.escalation[alert.severity]
    level = policy.steps[min(step, len(policy.steps) - 1)].level
    person = routing.oncall.person_for(unit_at(alert.unit, level), now)
    if person is not None:
        rows += person.channels()
    if step == 0 and (reason == "fired" or reason.startswith("unsilenced")):
        rows += [("webhook", str(url)) for url in routing.oncall.webhooks]
        rows.append(("nats", alert_subject(alert.severity, alert.unit[:6])))
    return [
        {
            "alert_id": alert.id,
            "reason": reason,
            "channel": channel,
            "target": target,
            "payload": bodies[channel],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for channel, target in rows
    ]


#: Rules whose alerts belong to a window (a day) and resolve themselves once it has passed.
WINDOWED_RULES = ("fever_cluster", "ears_")


def window_passed(rule: str, day: date, now: datetime) -> bool:
    """True for an alert of a windowed rule whose day is over (one day of grace)."""
    return rule.startswith(WINDOWED_RULES) and now.date() > day + timedelta(days=1)


async def raise_alert(
    conn: AsyncConnection,
    trigger: Trigger,
    routing: Routing,
    now: datetime,
    upper_bound: float | None = None,
) -> int | None:
    """Open a new alert for the trigger (returns its id) or count it on the open one (None).

    A windowed condition (cluster, EARS) whose window has already passed — late
    data, or a backlog applied after the day — counts on that window's alert even
    though it resolved itself: the window was paged once and is not paged again.
    """
    existing = await store.open_alert(conn, trigger.dedup_key)
    if existing is None and window_passed(trigger.rule, trigger.day, now):
        existing = await store.latest_alert(conn, trigger.dedup_key)
    if existing is not None:
        # the latest figures, not those of the first, possibly partial, evaluation
        latest: dict[str, Any] = {
            "summary_zh": trigger.summary_zh,
            "summary_en": trigger.summary_en,
        }
        if upper_bound is not None:
            latest["upper_bound"] = upper_bound
        await store.update_alert(conn, existing.id, occurrences=existing.occurrences + 1, **latest)
        return None
    alert_id = await store.insert_alert(
        conn,
        {
            "dedup_key": trigger.dedup_key,
            "rule": trigger.rule,
            "unit": trigger.unit,
            "window": trigger.window,
            "severity": trigger.severity.value,
            "state": "firing",
            "summary_zh": trigger.summary_zh,
            "summary_en": trigger.summary_en,
            "day": trigger.day,
            "occurrences": 1,
            "upper_bound": upper_bound,
            "fired_at": now,
            "escalation_step": 0,
            "last_notified_at": now,
        },
    )
    await store.note(conn, alert_id, now, "fired", detail=trigger.summary_en)
    metrics.ALERTS_RAISED.labels(trigger.rule, trigger.severity.value).inc()
    alert = await store.get_alert(conn, alert_id)
    silence = await matching_silence(conn, alert, routing, now)
    if silence is not None:
        await store.update_alert(conn, alert_id, state="silenced")
        await store.note(conn, alert_id, now, "silenced", detail=f"silence {silence}")
        return alert_id
    rows = notifications_for_step(alert, 0, "fired", routing, now)
    due = await store.group_due(conn, trigger.unit, trigger.rule)
    if due is None:
        due = now + timedelta(seconds=routing.oncall.group_wait_seconds)
    await store.enqueue(conn, [{**row, "next_attempt_at": due} for row in rows])
    return alert_id


async def matching_silence(
    conn: AsyncConnection, alert: Any, routing: Routing, now: datetime
) -> int | None:
    """The id of a silence in force that matches the alert's labels, if any."""
    alert_labels = labels(alert, routing.registry)
    for silence_id, matchers in await store.active_silences(conn, now):
        if silenced_by(matchers, alert_labels):
            return silence_id
    return None
