"""Raising alerts: a trigger opens a new alert or counts again on the open one.

Runs inside the caller's transaction, so an alert and its outbox rows are
committed together with the events that caused them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts import metrics, store
from zhibao_alerts.domain.config import GRID_STEP, OnCall
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_alerts.domain.silences import InForce
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
    formats = {_FORMATS[channel] for channel, _ in rows}
    bodies = {form: _body(form, alert, routing) for form in formats}
    return [
        {
            "alert_id": alert.id,
            "reason": reason,
            "channel": channel,
            "target": target,
            "payload": bodies[_FORMATS[channel]],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for channel, target in rows
    ]


#: The payload format of each channel: Alertmanager's webhook format for webhooks and
#: NATS, a chat robot's or a mail's message for the others.
_FORMATS = {
    "webhook": "alertmanager",
    "nats": "alertmanager",
    **{channel: channel for channel in ("dingtalk", "wecom", "feishu", "email")},
}


def _body(form: str, alert: Any, routing: Routing) -> str:
    """The payload of a notification in one of the :data:`_FORMATS`."""
    if form == "alertmanager":
        return encode(
            alertmanager(alert, routing.registry, routing.aggregator_url, places=routing.places)
        )
    return encode(robot_body(form, alert, routing.aggregator_url))


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


#: Silences in force (:func:`zhibao_alerts.store.active_silences`).
Silences = Sequence[InForce]


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

    The alerts of all the keys are read in one query, the new ones opened together
    (see :func:`_open`) and the counted ones updated together at the end. A windowed
    condition (cluster, EARS) whose window has already passed — late data, or a backlog
    applied after the day — counts on that window's alert even though it resolved
    itself: the window was paged once and is not paged again. ``received`` tells when
    the batch's events reached intake: an alert all of whose events are older than the
    paging horizon is not paged.
    """
    keys = {t.dedup_key for t, _ in raised}
    await lock_names(conn, (f"alert {key}" for key in keys))  # one raiser per key at a time
    known: dict[str, list[Any]] = defaultdict(list)
    for row in await store.alerts_with_keys(conn, keys):
        known[row.dedup_key].append(row)
    counted: dict[int, dict[str, Any]] = {}
    opening: dict[str, _Opening] = {}
    for trigger, upper_bound in raised:
        if trigger.dedup_key in opening:  # counts on the alert it opens, once opened
            opening[trigger.dedup_key].again.append((trigger, upper_bound))
            continue
        alert_id = _counts_on(known[trigger.dedup_key], trigger, now, zone)
        if alert_id is None:
            historical = _beyond_horizon(trigger, routing, now, received or {})
            opening[trigger.dedup_key] = _Opening(trigger, upper_bound, historical)
        else:
            counted[alert_id] = _count_again(counted.get(alert_id), alert_id, trigger, upper_bound)
    opened = await _open(conn, list(opening.values()), routing, now)
    for alert_id, new in zip(opened, opening.values(), strict=True):
        for trigger, upper_bound in new.again:
            counted[alert_id] = _count_again(counted.get(alert_id), alert_id, trigger, upper_bound)
    await store.count_again(conn, list(counted.values()))
    return opened


@dataclass
class _Opening:
    """A trigger that opens a new alert, and those of the call that count on it."""

    trigger: Trigger
    upper_bound: float | None
    #: from events beyond the paging horizon: recorded as expired, never paged
    historical: bool
    again: list[Raised] = field(default_factory=list)

    @property
    def state(self) -> str:
        """The state the alert opens in."""
        if self.historical:
            return EXPIRED
        return "firing" if self.trigger.pages else RECORDED


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
    conn: AsyncConnection, openings: Sequence[_Opening], routing: Routing, now: datetime
) -> list[int]:
    """Store the new alerts, each with its first note, and queue the notifications of
    those that page (unless silenced); returns their ids, in the openings' order.

    A storm opens dozens of alerts a batch, so each step is one statement for them all."""
    stored = await store.insert_alerts(conn, [_alert_row(o, now) for o in openings])
    new_alerts = [stored[o.trigger.dedup_key] for o in openings]
    await store.add_notes(
        conn,
        [_first_note(o, a.id, routing, now) for o, a in zip(openings, new_alerts, strict=True)],
    )
    for opening in openings:
        if not opening.historical:
            metrics.ALERTS_RAISED.labels(opening.trigger.rule, opening.trigger.severity.value).inc()
    firing = [alert for alert in new_alerts if alert.state == "firing"]
    if firing:
        paged = await _silence_matched(conn, firing, routing, now)
        await _enqueue_first(conn, paged, routing, now)
    return [int(alert.id) for alert in new_alerts]


def _alert_row(opening: _Opening, now: datetime) -> dict[str, Any]:
    """The stored fields of a new alert."""
    trigger = opening.trigger
    return {
        "dedup_key": trigger.dedup_key,
        "rule": trigger.rule,
        "unit": trigger.unit,
        "window": trigger.window,
        "severity": trigger.severity.value,
        "state": opening.state,
        "summary_zh": trigger.summary_zh,
        "summary_en": trigger.summary_en,
        "day": trigger.day,
        "occurrences": 1,
        "upper_bound": opening.upper_bound,
        "fired_at": now,
        "escalation_step": 0,
        "last_notified_at": now,
        "next_action_at": now if opening.state == "firing" else None,
        "grid": trigger.grid,
    }


def _first_note(
    opening: _Opening, alert_id: int, routing: Routing, now: datetime
) -> dict[str, Any]:
    """The first entry of a new alert's timeline: fired, or recorded, or expired."""
    if opening.state == EXPIRED:
        hours = routing.horizon.hours if routing.horizon else 0
        detail = f"from events received more than {hours:g} h ago: recorded, not paged"
        return store.note_row(alert_id, now, EXPIRED, actor="system", detail=detail)
    if opening.state == RECORDED:
        detail = f"{opening.trigger.summary_en} (the rules page nobody for it: recorded)"
        return store.note_row(alert_id, now, RECORDED, actor="system", detail=detail)
    return store.note_row(alert_id, now, "fired", detail=opening.trigger.summary_en)


async def _silence_matched(
    conn: AsyncConnection, firing: Sequence[Any], routing: Routing, now: datetime
) -> list[Any]:
    """Silence the new firing alerts a silence in force matches; returns the others."""
    in_force = await store.active_silences(conn, now)
    matched = {alert.id: silence_for(alert, in_force, routing) for alert in firing}
    silenced = {alert_id: silence for alert_id, silence in matched.items() if silence is not None}
    if silenced:
        await store.set_state(conn, silenced, "silenced")
        await store.add_notes(
            conn,
            [
                store.note_row(alert_id, now, "silenced", detail=f"silence {silence}")
                for alert_id, silence in silenced.items()
            ],
        )
    return [alert for alert in firing if alert.id not in silenced]


async def _enqueue_first(
    conn: AsyncConnection, paged: Sequence[Any], routing: Routing, now: datetime
) -> None:
    """Queue the first notifications of new alerts.

    Each joins its group's pending first notification, unless that one is due later than
    its own group wait (being sent under a lease, or held back by a rate limit)."""
    wait = now + timedelta(seconds=routing.oncall.group_wait_seconds)
    groups = await store.groups_due(conn, {(alert.unit, alert.rule) for alert in paged})
    rows: list[dict[str, Any]] = []
    for alert in paged:
        due = min(wait, groups.get((alert.unit, alert.rule), wait))
        rows += [
            {**row, "next_attempt_at": due}
            for row in notifications_for_step(alert, 0, "fired", routing, now)
        ]
    await store.add_notifications(conn, rows)  # new alerts: nothing of theirs is queued yet


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


def silence_for(alert: Any, silences: Silences, routing: Routing) -> int | None:
    """The id of the first of ``silences`` (those in force) that matches the alert's
    labels, if any."""
    alert_labels = labels(alert, routing.registry)
    for silence in silences:
        if silence.silences(alert_labels):
            return silence.id
    return None
