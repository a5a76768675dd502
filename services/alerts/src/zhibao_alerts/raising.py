"""Raising alerts: a trigger opens a new alert or counts again on the open one.

Runs inside the caller's transaction, so an alert and its outbox rows are
committed together with the events that caused them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts import metrics, store
from zhibao_alerts.domain.config import GRID_STEP, OnCall
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_alerts.domain.silences import silenced_by
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.payloads import alertmanager, encode, labels, robot_body
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.events import PublishedEvent
from zhibao_shared.hierarchy import Registry, unit_at
from zhibao_shared.places import Places
from zhibao_shared.subjects import alert_subject


@dataclass(frozen=True)
class Routing:
    """Who hears about alerts: the on-call configuration and where rollups live."""

    oncall: OnCall
    registry: Registry
    aggregator_url: str
    #: alerts raised from events of days older than this are recorded, not paged
    horizon: PageHorizon | None = None
    #: the registered places (names, grids and their workers)
    places: Places | None = None


def notifications_for_step(
    alert: Any, step: int, reason: str, routing: Routing, now: datetime
) -> list[dict[str, Any]]:
    """Outbox rows for one escalation step: that level's on-call, and for step 0 the
    catch-all webhooks and the NATS subject."""
    bodies = {
        "webhook": encode(
            alertmanager(alert, routing.registry, routing.aggregator_url, places=routing.places)
        ),
        "nats": encode(
            alertmanager(alert, routing.registry, routing.aggregator_url, places=routing.places)
        ),
        **{
            channel: encode(robot_body(channel, alert, routing.aggregator_url))
            for channel in ("dingtalk", "wecom", "feishu", "email")
        },
    }
    rows: list[tuple[str, str]] = []
    grid = alert.grid
    policy = routing.oncall.policy_for(alert.severity, grid)
    level = policy.steps[min(step, len(policy.steps) - 1)].level
    if level == GRID_STEP:
        rows += routing.oncall.grid_channels(grid) if grid else []
    else:
        for person in routing.oncall.people_for(unit_at(alert.unit, level), now):
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


#: Rules raised from messages (events, or the response service's overdue tasks), as
#: against the watchdog's, which judge the present.
EVENT_RULES = ("immediate_", "fever_cluster", "ears_", "task_overdue")
#: An alert from history, beyond the paging horizon: recorded, never paged.
EXPIRED = "expired"
#: An alert whose rule pages nobody (``task_overdue.page: false``): open, never paged.
RECORDED = store.RECORDED

#: Rules whose alerts belong to a window (a day) and resolve themselves once it has passed.
WINDOWED_RULES = ("fever_cluster", "ears_")


def window_passed(rule: str, day: date, now: datetime, zone: tzinfo) -> bool:
    """True for an alert of a windowed rule whose (local) day is over, with one day of
    grace: ``day`` is a day in ``zone`` (ZHIBAO_TIMEZONE), so ``now`` is taken there."""
    local = now.astimezone(zone).date()
    return rule.startswith(WINDOWED_RULES) and local > day + timedelta(days=1)


def window_ends(rule: str, day: date, zone: tzinfo) -> datetime | None:
    """When :func:`window_passed` becomes true for an alert (None: not a windowed rule):
    the start of the local day after the day of grace."""
    if not rule.startswith(WINDOWED_RULES):
        return None
    return datetime.combine(day + timedelta(days=2), time(), zone)


#: A trigger to raise and, for an EARS alarm, the upper bound it exceeded.
Raised = tuple[Trigger, float | None]


#: When intake received the newest event of each (community, day) of a batch.
Received = Mapping[tuple[str, date], datetime]


def received_by_community_day(events: Iterable[PublishedEvent], zone: ZoneInfo) -> Received:
    """The newest ``receivedat`` of the events of each community and (district) day."""
    newest: dict[tuple[str, date], datetime] = {}
    for event in events:
        key = (event.subject, event.time.astimezone(zone).date())
        if key not in newest or event.receivedat > newest[key]:
            newest[key] = event.receivedat
    return newest


async def raise_alerts(
    conn: AsyncConnection,
    raised: Sequence[Raised],
    routing: Routing,
    now: datetime,
    zone: tzinfo,
    received: Received | None = None,
) -> list[int]:
    """Raise triggers in order: each opens a new alert or counts on the open one with its
    dedup key; returns the ids of the alerts opened.

    The alerts of all the keys are read in one query and the counted ones are
    updated together at the end. A windowed condition (cluster, EARS) whose window
    has already passed — late data, or a backlog applied after the day — counts on
    that window's alert even though it resolved itself: the window was paged once
    and is not paged again. ``received`` tells when the batch's events reached intake:
    an alert all of whose events are older than the paging horizon is not paged.
    """
    keys = {t.dedup_key for t, _ in raised}
    await lock_names(conn, (f"alert {key}" for key in keys))  # one raiser per key at a time
    known: dict[str, list[Any]] = defaultdict(list)
    for row in await store.alerts_with_keys(conn, keys):
        known[row.dedup_key].append(row)
    counted: dict[int, dict[str, Any]] = {}
    opened: list[int] = []
    for trigger, upper_bound in raised:
        alert_id = _counts_on(known[trigger.dedup_key], trigger, now, zone)
        if alert_id is None:
            historical = _beyond_horizon(trigger, routing, now, received or {})
            alert_id = await _open(conn, trigger, routing, now, upper_bound, historical)
            known[trigger.dedup_key].append(_Opened(alert_id, "firing"))
            opened.append(alert_id)
        else:
            counted[alert_id] = _count_again(counted.get(alert_id), alert_id, trigger, upper_bound)
    await store.count_again(conn, list(counted.values()))
    return opened


@dataclass(frozen=True)
class _Opened:
    """An alert opened by this call, alongside those read from the store."""

    id: int
    state: str


def _counts_on(
    same_key: Sequence[Any], trigger: Trigger, now: datetime, zone: tzinfo
) -> int | None:
    """The alert a trigger counts on, among those with its key (oldest first): the open
    one, else for a window that has passed the latest; None when it opens a new alert."""
    for alert in same_key:
        if alert.state in store.OPEN_STATES or alert.state == EXPIRED:
            return int(alert.id)
    if same_key and window_passed(trigger.rule, trigger.day, now, zone):
        return int(same_key[-1].id)
    return None


def _count_again(
    previous: dict[str, Any] | None, alert_id: int, trigger: Trigger, upper_bound: float | None
) -> dict[str, Any]:
    """One more occurrence, with the latest figures rather than those of the first,
    possibly partial, evaluation (an upper bound of None keeps the last known one)."""
    if upper_bound is None and previous is not None:
        upper_bound = previous["upper_bound"]
    return {
        "id": alert_id,
        "times": previous["times"] + 1 if previous is not None else 1,
        "summary_zh": trigger.summary_zh,
        "summary_en": trigger.summary_en,
        "upper_bound": upper_bound,
    }


async def _open(
    conn: AsyncConnection,
    trigger: Trigger,
    routing: Routing,
    now: datetime,
    upper_bound: float | None,
    historical: bool = False,
) -> int:
    """Store a new alert and queue its notifications (or silence it, or record it as
    expired when it comes from history, beyond the paging horizon)."""
    alert_id = await store.insert_alert(
        conn,
        {
            "dedup_key": trigger.dedup_key,
            "rule": trigger.rule,
            "unit": trigger.unit,
            "window": trigger.window,
            "severity": trigger.severity.value,
            "state": EXPIRED if historical else ("firing" if trigger.pages else RECORDED),
            "summary_zh": trigger.summary_zh,
            "summary_en": trigger.summary_en,
            "day": trigger.day,
            "occurrences": 1,
            "upper_bound": upper_bound,
            "fired_at": now,
            "escalation_step": 0,
            "last_notified_at": now,
            "next_action_at": None if historical or not trigger.pages else now,
            "grid": trigger.grid,
        },
    )
    if historical:
        hours = routing.horizon.hours if routing.horizon else 0
        detail = f"from events received more than {hours:g} h ago: recorded, not paged"
        await store.note(conn, alert_id, now, EXPIRED, actor="system", detail=detail)
        return alert_id
    if not trigger.pages:
        detail = f"{trigger.summary_en} (the rules page nobody for it: recorded)"
        await store.note(conn, alert_id, now, RECORDED, actor="system", detail=detail)
        metrics.ALERTS_RAISED.labels(trigger.rule, trigger.severity.value).inc()
        return alert_id
    await store.note(conn, alert_id, now, "fired", detail=trigger.summary_en)
    metrics.ALERTS_RAISED.labels(trigger.rule, trigger.severity.value).inc()
    alert = await store.get_alert(conn, alert_id)
    silence = await matching_silence(conn, alert, routing, now)
    if silence is not None:
        await store.update_alert(conn, alert_id, state="silenced")
        await store.note(conn, alert_id, now, "silenced", detail=f"silence {silence}")
        return alert_id
    rows = notifications_for_step(alert, 0, "fired", routing, now)
    # It joins its group's pending first notification, unless that one is due later
    # than its own group wait (being sent under a lease, or held back by a rate limit).
    due = now + timedelta(seconds=routing.oncall.group_wait_seconds)
    group = await store.group_due(conn, trigger.unit, trigger.rule)
    if group is not None and group < due:
        due = group
    await store.enqueue(conn, [{**row, "next_attempt_at": due} for row in rows])
    return alert_id


def _beyond_horizon(trigger: Trigger, routing: Routing, now: datetime, received: Received) -> bool:
    """An event-driven alert whose events (those of its unit and day in the batch) all
    reached intake longer ago than the paging horizon."""
    horizon = routing.horizon
    if horizon is None or not trigger.rule.startswith(EVENT_RULES):
        return False
    times = [
        at
        for (community, day), at in received.items()
        if day == trigger.day and community.startswith(trigger.unit)
    ]
    return bool(times) and horizon.passed(max(times), now)


async def matching_silence(
    conn: AsyncConnection, alert: Any, routing: Routing, now: datetime
) -> int | None:
    """The id of a silence in force that matches the alert's labels, if any."""
    alert_labels = labels(alert, routing.registry)
    for silence_id, matchers in await store.active_silences(conn, now):
        if silenced_by(matchers, alert_labels):
            return silence_id
    return None
