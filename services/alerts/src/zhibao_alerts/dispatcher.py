"""The background loop: deliver the outbox, escalate unacknowledged alerts, expire windows.

Delivery is at least once and recorded: a notification is marked ``sent`` only
when its receiver answered 2xx; failures are retried with exponential backoff
(visible in the API and in metrics) until ``max_attempts``. A stop lets the sends
under way finish and be recorded, and hands back what a pass had not started.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
import structlog
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import metrics, store
from zhibao_alerts.domain.config import Policy, Severity
from zhibao_alerts.domain.escalation import due_step, next_action, reminder_due
from zhibao_alerts.domain.redaction import mask_text
from zhibao_alerts.domain.robot_batches import (
    MESSAGE_BYTES,
    ROBOT_CHANNELS,
    WINDOW,
    RateWindow,
    pack,
)
from zhibao_alerts.mail import send_email
from zhibao_alerts.payloads import merge, message_text
from zhibao_alerts.raising import Routing, notifications_for_step, window_ends, window_passed
from zhibao_alerts.robots import dingtalk_url, feishu_body, robot_error
from zhibao_alerts.tables import alerts, notifications

log = structlog.get_logger(__name__)

#: Delivery order by the alert's severity: the most urgent first.
_URGENCY = {severity.value: rank for rank, severity in enumerate(Severity)}

PublishNats = Callable[[str, bytes], Awaitable[None]]


class SidePass(Enum):
    """A pass wake() starts while another is sending, by what it takes."""

    #: what the passes under way did not take (a new alert, whatever its severity)
    REST = "rest"
    #: critical alerts' notifications only, while the other passes are sending
    CRITICAL = "critical"


class Held(Enum):
    """A message a pass took but did not send: the dispatcher was stopping."""

    AT_STOP = "held at stop"


#: What sending a message came to: None (accepted), the reason it failed, or held.
Attempt = str | None | Held


class Message(NamedTuple):
    """One request to a receiver, carrying one or more notifications (outbox rows)."""

    channel: str
    target: str
    rows: list[Any]


#: The longest an idle dispatcher sleeps (what no wake() announces: another instance's
#: alerts, changes made through the API) and how often the gauges of open alerts and
#: pending notifications are refreshed when nothing changed.
IDLE_S = 2.0
GAUGE_S = timedelta(seconds=30)
#: How long a pass holds what it took (notifications being sent, alerts being
#: escalated) before another instance may take them again.
LEASE = timedelta(minutes=2)
#: The shortest pause between passes (a failing database is not hammered).
MIN_PAUSE_S = 0.2


class Dispatcher:
    """Delivers notifications and runs escalation timers."""

    def __init__(
        self,
        engine: AsyncEngine,
        routing: Callable[[], Routing],
        publish_nats: PublishNats,
        clock: Callable[[], datetime],
        *,
        timezone: str = "Asia/Shanghai",
        max_attempts: int = 8,
        max_backoff_s: float = 300,
        timeout_s: float = 5.0,
        concurrency: int = 16,
    ) -> None:
        self._engine = engine
        self._routing = routing
        self._publish_nats = publish_nats
        self._clock = clock
        #: windowed alerts' days are local days (ZHIBAO_TIMEZONE)
        self._zone = ZoneInfo(timezone)
        self._max_attempts = max_attempts
        self._max_backoff_s = max_backoff_s
        self._concurrency = concurrency
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._woken = asyncio.Event()
        #: Notifications being sent now: another pass leaves them alone.
        self._in_flight: set[int] = set()
        self._taking = asyncio.Lock()
        #: the passes wake() started, and those asked for again while they ran
        self._side: dict[SidePass, asyncio.Task[None]] = {}
        self._side_wanted: set[SidePass] = set()
        self._stopping = False
        self._gauged: datetime | None = None
        #: something was raised, sent, retried or escalated since the gauges were refreshed
        self._changed = True
        #: messages sent to each chat robot over the last minute (this instance's)
        self._robots = RateWindow()

    def wake(self) -> None:
        """Deliver now rather than at the next interval (a new alert was committed).

        When a pass is still sending (a burst of pages, a slow receiver), a second
        pass starts at once for what that pass did not take, so a new alert is not
        queued behind it. When that one is sending too (a storm of warnings), a pass
        for critical alerts alone starts (or runs once more after the one under way),
        so a confirmed case is not queued behind warnings.
        """
        self._woken.set()
        self._changed = True
        # a pass taking its notifications has not marked them in flight yet: busy too
        if self._stopping or not (self._in_flight or self._taking.locked()):
            return
        rest = self._side.get(SidePass.REST)
        self._start(SidePass.REST if rest is None or rest.done() else SidePass.CRITICAL)

    def _start(self, side: SidePass) -> None:
        """Run a side pass now, or once more after the one under way."""
        self._side_wanted.add(side)
        running = self._side.get(side)
        if running is None or running.done():
            self._side[side] = asyncio.create_task(self._side_passes(side))

    async def _side_passes(self, side: SidePass) -> None:
        """A side pass, again while wake() asked for one during it, until stopped."""
        while side in self._side_wanted and not self._stopping:
            self._side_wanted.discard(side)
            try:
                await self.deliver(critical_only=side is SidePass.CRITICAL)
            except Exception as exc:
                log.warning("dispatcher_delivery_failed", error=mask_text(repr(exc)))

    def stop(self) -> None:
        """End :meth:`run` after the pass under way: the sends already started finish
        and are recorded (cancelled, what a receiver got would go out again after the
        lease); the messages not started yet are handed back, due at once for the next
        instance (a chat robot's once its rate window has passed)."""
        self._stopping = True
        self._woken.set()

    async def run(self, interval_s: float = IDLE_S) -> None:
        """Pass whenever woken, else at the next due time (at least ``MIN_PAUSE_S`` and
        at most ``interval_s`` apart), until stopped (:meth:`stop`) or cancelled.

        An idle service reads two indexed minima per pass, however many alerts are open.
        """
        try:
            while not self._stopping:
                try:
                    await self.tick()
                    metrics.LAST_PASS.set(self._clock().timestamp())
                    if self._stopping:
                        break
                    wait = await self.seconds_until_due(interval_s)
                except Exception as exc:
                    log.warning("dispatcher_tick_failed", error=mask_text(repr(exc)))
                    wait = MIN_PAUSE_S
                await self._pause(max(MIN_PAUSE_S, min(interval_s, wait)))
        finally:
            self._stopping = True  # cancelled too: wake() starts no pass left unawaited
            for side in list(self._side.values()):
                await _finish_side_pass(side)
            await self._http.aclose()

    async def _pause(self, wait_s: float) -> None:
        # A wake() during the tick just done is kept: the next tick then follows at once.
        with suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), wait_s)
        self._woken.clear()

    async def seconds_until_due(self, idle_s: float) -> float:
        """Seconds until the next pending notification or alert action is due
        (``idle_s`` when nothing is scheduled)."""
        async with self._engine.connect() as conn:
            sending = await conn.scalar(
                select(func.min(notifications.c.next_attempt_at)).where(
                    notifications.c.status == "pending"
                )
            )
            acting = await conn.scalar(select(func.min(alerts.c.next_action_at)))
        due: list[datetime] = [at for at in (sending, acting) if at is not None]
        if not due:
            return idle_s
        return float((min(due) - self._clock()).total_seconds())

    async def tick(self) -> int:
        """One pass: deliver, escalate and expire, deliver; returns notifications sent.

        What is already due goes out before the escalation pass, so a new alert's first
        page does not wait for the escalation timers.
        """
        sent = await self.deliver()
        if not self._stopping and await self.escalate():
            sent += await self.deliver()
        await self._gauge()
        return sent

    async def reschedule(self) -> None:
        """Every open alert is looked at on the next pass (the escalation policies changed)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                alerts.update()
                .where(alerts.c.state.in_(("firing", "acknowledged")))
                .values(next_action_at=self._clock())
            )
        self.wake()

    async def escalate(self) -> int:
        """Advance the alerts whose next action is due along their policy; remind; expire
        windows. Returns how many alerts were looked at (0 on an idle pass).

        Only alerts with ``next_action_at`` due are read (an indexed range): each gets
        its next due time recomputed, so an alert waiting for its next step costs
        nothing until then.
        """
        now = self._clock()
        routing = self._routing()
        async with self._engine.begin() as conn:
            due = await self._claim_alerts(conn, now)
            for alert in due:
                await self._act(conn, alert, routing, now)
        self._changed = self._changed or bool(due)
        return len(due)

    async def _claim_alerts(self, conn: AsyncConnection, now: datetime) -> list[Any]:
        """The alerts whose next action is due, taken by this transaction: another
        instance's concurrent pass waits for it to commit and then finds them no longer
        due, so no alert is escalated or reminded twice."""
        claim = (
            alerts.update()
            .where(alerts.c.next_action_at <= now)
            .values(next_action_at=now + LEASE)
            .returning(alerts.c.id)
        )
        ids = list((await conn.execute(claim)).scalars())
        if not ids:
            return []
        return list((await conn.execute(select(alerts).where(alerts.c.id.in_(ids)))).all())

    async def _act(
        self, conn: AsyncConnection, alert: Any, routing: Routing, now: datetime
    ) -> None:
        """Escalate, remind or expire one due alert, then schedule its next action."""
        if alert.state not in ("firing", "acknowledged"):
            await store.update_alert(conn, alert.id, next_action_at=None)
            return
        if await self._expire(conn, alert, now):
            return
        policy = routing.oncall.policy_for(alert.severity, alert.grid)
        step, notified = alert.escalation_step, alert.last_notified_at
        if alert.state == "firing":
            step, notified = await self._advance(conn, alert, policy, routing, now)
        scheduled = next_action(
            policy,
            firing=alert.state == "firing",
            step=step,
            fired_at=alert.fired_at,
            last_notified=notified,
            repeat_minutes=alert.repeat_minutes,
            window_ends=window_ends(alert.rule, alert.day, self._zone),
        )
        await store.update_alert(conn, alert.id, next_action_at=scheduled)

    async def _advance(
        self, conn: AsyncConnection, alert: Any, policy: Policy, routing: Routing, now: datetime
    ) -> tuple[int, datetime | None]:
        """Escalate a firing alert to its due step or remind; returns its (step, last
        notified) afterwards."""
        step = due_step(policy, alert.fired_at, now)
        if step > alert.escalation_step:
            await store.enqueue(conn, _steps_up_to(alert, step, routing, now))
            await store.update_alert(conn, alert.id, escalation_step=step, last_notified_at=now)
            passed = policy.steps[alert.escalation_step + 1 : step + 1]
            await store.note(
                conn, alert.id, now, "escalated", detail=", ".join(s.level for s in passed)
            )
            return step, now
        if reminder_due(policy, alert.last_notified_at, now, alert.repeat_minutes):
            reason = f"reminder-{now:%Y%m%dT%H%M}"
            await store.enqueue(
                conn, notifications_for_step(alert, alert.escalation_step, reason, routing, now)
            )
            await store.update_alert(conn, alert.id, last_notified_at=now)
            await store.note(conn, alert.id, now, "reminded")
            return alert.escalation_step, now
        return alert.escalation_step, alert.last_notified_at

    async def _expire(self, conn: AsyncConnection, alert: Any, now: datetime) -> bool:
        """A windowed alert (cluster, EARS) resolves itself once its day is over."""
        if not window_passed(alert.rule, alert.day, now, self._zone):
            return False
        await store.update_alert(
            conn, alert.id, state="resolved", resolved_at=now, next_action_at=None
        )
        await store.note(
            conn,
            alert.id,
            now,
            "resolved",
            actor="system",
            detail="the window of the condition has passed",
        )
        return True

    async def _gauge(self) -> None:
        """Refresh the gauges of open alerts and pending notifications after a pass that
        changed anything, else at most every GAUGE_S."""
        at, changed = self._clock(), self._changed
        if not changed and self._gauged is not None and at - self._gauged < GAUGE_S:
            return
        self._changed = False  # a change recorded while these read is refreshed next pass
        try:
            opened, pending = await self._gauged_figures()
        except Exception as exc:  # the pass itself went through: tried again next pass
            self._changed = True
            log.warning("dispatcher_gauges_failed", error=mask_text(repr(exc)))
            return
        except BaseException:
            self._changed = self._changed or changed
            raise
        self._gauged = at
        metrics.ALERTS_OPEN.clear()
        for rule, state, count in opened:
            metrics.ALERTS_OPEN.labels(rule, state).set(count)
        metrics.NOTIFICATIONS_PENDING.clear()
        metrics.OLDEST_PENDING.clear()
        for channel, count, oldest in pending:
            metrics.NOTIFICATIONS_PENDING.labels(channel).set(count)
            metrics.OLDEST_PENDING.labels(channel).set(oldest.timestamp())

    async def _gauged_figures(self) -> tuple[list[Any], list[Any]]:
        """Open alerts per (rule, state); pending notifications per channel, with the time
        the oldest was queued (rows from before that was kept: when it is due)."""
        queued = func.coalesce(notifications.c.created_at, notifications.c.next_attempt_at)
        async with self._engine.connect() as conn:
            opened = (
                await conn.execute(
                    select(alerts.c.rule, alerts.c.state, func.count())
                    .where(alerts.c.state.in_(store.OPEN_STATES))
                    .group_by(alerts.c.rule, alerts.c.state)
                )
            ).all()
            pending = (
                await conn.execute(
                    select(notifications.c.channel, func.count(), func.min(queued))
                    .where(notifications.c.status == "pending")
                    .group_by(notifications.c.channel)
                )
            ).all()
        return list(opened), list(pending)

    async def deliver(self, limit: int = 200, *, critical_only: bool = False) -> int:
        """Send due notifications, grouped per receiver, unit and rule; returns how many
        notifications were accepted (a group counts once).

        The most severe go first (a confirmed case is not queued behind a burst of
        warnings), the groups are sent concurrently (at most ``concurrency`` at a
        time, so one slow receiver does not hold up the others) and the outcomes
        are recorded in one transaction. ``critical_only``: only critical alerts'
        notifications. A stopped dispatcher sends nothing.
        """
        if self._stopping:
            return 0
        async with self._taking:  # two passes never take the same notification
            due = await self._due(limit, critical_only=critical_only)
            taken = {row.id for row in due}
            self._in_flight |= taken
        try:
            return await self._deliver(due)
        finally:
            self._in_flight -= taken

    async def _due(self, limit: int, *, critical_only: bool = False) -> list[Any]:
        """Pending notifications due now and not being sent, the most urgent first."""
        urgency = case(_URGENCY, value=alerts.c.severity, else_=len(_URGENCY))
        query = (
            select(notifications, alerts.c.unit, alerts.c.rule)
            .join(alerts, alerts.c.id == notifications.c.alert_id)
            .where(
                notifications.c.status == "pending",
                notifications.c.next_attempt_at <= self._clock(),
            )
            .order_by(urgency, notifications.c.id)
            .limit(limit)
        )
        if self._in_flight:
            query = query.where(notifications.c.id.not_in(self._in_flight))
        if critical_only:
            query = query.where(alerts.c.severity == Severity.CRITICAL.value)
        async with self._engine.begin() as conn:
            rows = list((await conn.execute(query)).all())
            claimed = await self._claim_notifications(conn, [row.id for row in rows])
        return [row for row in rows if row.id in claimed]

    async def _claim_notifications(self, conn: AsyncConnection, ids: list[int]) -> set[int]:
        """Take these notifications for ``LEASE`` (another instance, or a pass of this one,
        sees them as not due); the ones another instance took first are left out.

        On PostgreSQL a concurrent claim of the same row waits for the first one's
        commit and then finds it no longer due. The outcome of the sending sets the next
        attempt; a dispatcher that dies while sending lets the lease run out, and another
        one sends again (at least once; the ``Idempotency-Key`` tells the receiver).
        """
        if not ids:
            return set()
        now = self._clock()
        claim = (
            notifications.update()
            .where(
                notifications.c.id.in_(ids),
                notifications.c.status == "pending",
                notifications.c.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + LEASE)
            .returning(notifications.c.id)
        )
        return set((await conn.execute(claim)).scalars())

    async def _deliver(self, due: list[Any]) -> int:
        messages, paced = self._messages(due)
        gate = asyncio.Semaphore(self._concurrency)

        async def send(message: Message) -> Attempt:
            channel, target, rows = message
            async with gate:
                if self._stopping:
                    return Held.AT_STOP
                key = ",".join(str(r.id) for r in rows)
                return await self._send(
                    channel, target, merge(channel, [r.payload for r in rows]), key
                )

        attempts = await asyncio.gather(*(send(message) for message in messages))
        now = self._clock()
        outcomes: list[tuple[Any, str | None]] = []
        for message, attempt in zip(messages, attempts, strict=True):
            if attempt is Held.AT_STOP:
                paced |= {row.id: _handed_back(message.channel, now) for row in message.rows}
            else:
                outcomes += [(row, attempt) for row in message.rows]
        await self._record(outcomes, now, paced)
        return sum(attempt is None for attempt in attempts)

    def _messages(self, due: list[Any]) -> tuple[list[Message], dict[int, datetime]]:
        """What to send now: one message per receiver, unit and rule; for a chat robot,
        whatever is due for it (see :meth:`_robot_messages`). Also the notifications
        that wait for their robot's next room (id: when)."""
        groups: dict[tuple[str, ...], list[Any]] = defaultdict(list)
        for row in due:
            key = (row.channel, row.target)
            groups[key if row.channel in ROBOT_CHANNELS else (*key, row.unit, row.rule)].append(row)
        messages: list[Message] = []
        paced: dict[int, datetime] = {}
        for (channel, target, *_), rows in groups.items():
            if channel in ROBOT_CHANNELS:
                now_sent, later = self._robot_messages(channel, target, rows)
                messages += now_sent
                paced |= later
            else:
                messages.append(Message(channel, target, rows))
        return messages, paced

    def _robot_messages(
        self, channel: str, target: str, rows: list[Any]
    ) -> tuple[list[Message], dict[int, datetime]]:
        """A robot's due notifications (most urgent first) packed into messages within its
        size limit, as many as its rate limit has room for this minute; the rest wait
        until it has room again (id: when), none dropped."""
        now, robot = self._clock(), f"{channel} {target}"
        sizes = [len(message_text(channel, row.payload).encode()) for row in rows]
        packed = [[rows[i] for i in part] for part in pack(sizes, MESSAGE_BYTES[channel])]
        limit = self._routing().oncall.robot_limit(channel, target)
        room = min(len(packed), self._robots.room(robot, limit, now))
        self._robots.take(robot, room, now)
        later = self._robots.next_room(robot, limit, now)
        paced = {row.id: later for part in packed[room:] for row in part}
        metrics.ROBOT_MESSAGES.labels(channel).inc(room)
        metrics.NOTIFICATIONS_PACED.labels(channel).inc(len(paced))
        return [Message(channel, target, part) for part in packed[:room]], paced

    async def _send(self, channel: str, target: str, payload: str, key: str) -> str | None:
        """Send one (grouped) notification; None on success, else the reason.

        HTTP receivers get the outbox ids in ``Idempotency-Key``: a resend after a
        timeout whose request did arrive carries the same ids, so they can drop it.
        """
        try:
            if channel == "nats":
                await self._publish_nats(target, payload.encode())
                return None
            if channel == "email":
                await send_email(self._routing().oncall.smtp, target, payload)
                return None
            url, body = self._signed(channel, target, payload)
            response = await self._http.post(
                url,
                content=body.encode(),
                headers={"content-type": "application/json", "idempotency-key": key},
            )
        except (httpx.HTTPError, OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return robot_error(channel, response.content)
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def _signed(self, channel: str, target: str, payload: str) -> tuple[str, str]:
        """Sign robot requests now (timestamps must be fresh; secrets stay in config)."""
        secret = self._routing().oncall.secret_for(channel, target)
        if secret is None:
            return target, payload
        now = self._clock()
        if channel == "dingtalk":
            return dingtalk_url(target, secret, int(now.timestamp() * 1000)), payload
        if channel == "feishu":
            return target, feishu_body(payload, secret, int(now.timestamp()))
        return target, payload

    async def _record(
        self,
        outcomes: list[tuple[Any, str | None]],
        now: datetime,
        paced: dict[int, datetime] | None = None,
    ) -> None:
        """Mark sent notifications sent, schedule the failed ones' retries, and the paced
        ones for when their robot has room or, held at a stop, for when
        :func:`_handed_back` says (not an attempt: nothing was sent)."""
        paced = paced or {}
        if not outcomes and not paced:
            return
        async with self._engine.begin() as conn:
            for row, error in outcomes:
                await conn.execute(
                    notifications.update()
                    .where(notifications.c.id == row.id)
                    .values(**self._outcome(row, error, now))
                )
            for row_id, when in paced.items():
                await conn.execute(
                    notifications.update()
                    .where(notifications.c.id == row_id)
                    .values(next_attempt_at=when)
                )
        self._changed = True  # committed: the next refresh of the gauges sees it

    def _outcome(self, row: Any, error: str | None, now: datetime) -> dict[str, Any]:
        """The notification's new columns after one attempt (and its metrics)."""
        attempts = row.attempts + 1
        if error is None:
            metrics.NOTIFICATIONS_SENT.labels(row.channel).inc()
            if row.created_at is not None:
                latency = max(0.0, (now - row.created_at).total_seconds())
                metrics.NOTIFICATION_LATENCY.labels(row.channel).observe(latency)
            return {"status": "sent", "sent_at": now, "attempts": attempts}
        metrics.NOTIFICATIONS_FAILED.labels(row.channel).inc()
        # errors quote URLs and addresses: neither the log nor the outbox keeps them in full
        error = mask_text(error, (row.target,)) or ""
        gave_up = attempts >= self._max_attempts
        if gave_up:
            metrics.NOTIFICATIONS_GAVE_UP.labels(row.channel).inc()
        log.warning(
            "notification_failed",
            channel=row.channel,
            attempts=attempts,
            gave_up=gave_up,
            error=error,
        )
        backoff = min(self._max_backoff_s, 2.0**attempts)
        return {
            "status": "failed" if gave_up else "pending",
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": now + timedelta(seconds=backoff),
        }


async def _finish_side_pass(side: asyncio.Task[None]) -> None:
    """Let a pass started by wake() record what it sent, however often the stop repeats
    its cancellation (what it sent but did not record would go out again)."""
    while not side.done():
        with suppress(asyncio.CancelledError):
            await asyncio.wait({side})
    if not side.cancelled():
        with suppress(Exception):
            side.result()


def _handed_back(channel: str, now: datetime) -> datetime:
    """When a message held at a stop is due again: at once, or for a chat robot once a
    whole rate window has passed (the next instance does not know what this one sent it)."""
    return now + WINDOW if channel in ROBOT_CHANNELS else now


def _steps_up_to(alert: Any, step: int, routing: Routing, now: datetime) -> list[dict[str, Any]]:
    """Notifications for every step after the last one notified, up to ``step``.

    A dispatcher that was down for a while does not skip a level: each level's
    on-call is paged, and a person covering several of them is paged once.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for missed in range(alert.escalation_step + 1, step + 1):
        for row in notifications_for_step(alert, missed, f"step{missed}", routing, now):
            rows[(row["channel"], row["target"])] = row
    return list(rows.values())
