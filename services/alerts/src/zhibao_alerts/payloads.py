"""Notification bodies: the Alertmanager v4 webhook JSON, and the NATS alert message."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.engine import Row

from zhibao_alerts.domain.chat_text import inert
from zhibao_shared.hierarchy import Registry
from zhibao_shared.places import Places

ZERO_TIME = "0001-01-01T00:00:00Z"


def rollup_link(aggregator_url: str, unit: str, day: str) -> str:
    """Where the unit's rollup for the day can be read."""
    return f"{aggregator_url}/v1/units/{unit}/rollup?date={day}"


def labels(alert: Row[Any], registry: Registry) -> dict[str, str]:
    """Alertmanager labels: rule, severity and the unit's hierarchy path by level."""
    result = {"alertname": alert.rule, "severity": alert.severity, "unit": alert.unit}
    if alert.grid:
        result["grid"] = alert.grid
    if alert.unit in registry:
        for unit in registry.path(alert.unit):
            result[unit.level.value] = unit.code
    return result


def alertmanager(
    alert: Row[Any],
    registry: Registry,
    aggregator_url: str,
    status: str = "firing",
    places: Places | None = None,
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body for one alert (existing receivers accept it); an
    alert about a place in a grid names the grid and its worker (staff) as the places
    registry has them."""
    alert_labels = labels(alert, registry)
    path = " / ".join(u.name for u in registry.path(alert.unit)) if alert.unit in registry else ""
    annotations = {"summary": alert.summary_en, "summary_zh": alert.summary_zh, "hierarchy": path}
    grid = places.get(alert.grid) if places is not None and alert.grid else None
    if grid is not None:
        annotations["grid_name"] = grid.name
        if grid.worker:
            annotations["grid_worker"] = grid.worker
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert.rule}", unit="{alert.unit}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "zhibao",
        "groupLabels": {"alertname": alert.rule, "unit": alert.unit},
        "commonLabels": alert_labels,
        "commonAnnotations": annotations,
        "externalURL": aggregator_url,
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": annotations,
                "startsAt": alert.fired_at.isoformat(),
                "endsAt": alert.resolved_at.isoformat() if alert.resolved_at else ZERO_TIME,
                "generatorURL": rollup_link(aggregator_url, alert.unit, alert.day.isoformat()),
                "fingerprint": hashlib.sha256(alert.dedup_key.encode()).hexdigest()[:16],
            }
        ],
    }


def encode(body: dict[str, Any]) -> str:
    """Stored payload text."""
    return json.dumps(body, ensure_ascii=False)


def robot_text(alert: Row[Any], aggregator_url: str) -> str:
    """A short markdown message (Chinese first) for chat robots.

    The summaries carry reporters' text (compound, building): it is made inert, so it
    cannot add links, images, formatting or mentions to an on-call message.
    """
    link = rollup_link(aggregator_url, alert.unit, alert.day.isoformat())
    return (
        f"### 【{alert.severity.upper()}】{inert(alert.summary_zh)}\n\n"
        f"{inert(alert.summary_en)}\n\n单元 unit: {alert.unit} · 规则 rule: {alert.rule}\n\n"
        f"[查看汇总 rollup]({link})"
    )


def robot_body(channel: str, alert: Row[Any], aggregator_url: str) -> dict[str, Any]:
    """The unsigned message body for a DingTalk, WeCom or Feishu robot."""
    text = robot_text(alert, aggregator_url)
    if channel == "dingtalk":
        title = inert(alert.summary_zh)
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    if channel == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if channel == "email":
        return {
            "subject": f"[{alert.severity}] {inert(alert.summary_zh)} / {inert(alert.summary_en)}",
            "text": text,
        }
    return {"msg_type": "text", "content": {"text": text}}


def message_text(channel: str, payload: str) -> str:
    """The text of a chat robot's message body (what the robot's size limit counts)."""
    body = json.loads(payload)
    if channel == "dingtalk":
        return str(body["markdown"]["text"])
    if channel == "wecom":
        return str(body["markdown"]["content"])
    return str(body["content"]["text"])


def merge(channel: str, payloads: list[str]) -> str:
    """One notification for several alerts: of the same unit and rule (grouping), or,
    for a chat robot, everything due for it that fits into one message."""
    if len(payloads) == 1:
        return payloads[0]
    bodies = [json.loads(p) for p in payloads]
    first = bodies[0]
    if channel in ("webhook", "nats"):
        first["alerts"] = [a for b in bodies for a in b["alerts"]]
    elif channel == "dingtalk":
        first["markdown"]["title"] = f"{len(bodies)} 条预警 alerts: {first['markdown']['title']}"
        first["markdown"]["text"] = "\n\n---\n\n".join(b["markdown"]["text"] for b in bodies)
    elif channel == "wecom":
        first["markdown"]["content"] = "\n\n".join(b["markdown"]["content"] for b in bodies)
    elif channel == "feishu":
        first["content"]["text"] = "\n\n".join(b["content"]["text"] for b in bodies)
    elif channel == "email":
        first["subject"] = f"({len(bodies)}) {first['subject']}"
        first["text"] = "\n\n".join(b["text"] for b in bodies)
    return encode(first)
