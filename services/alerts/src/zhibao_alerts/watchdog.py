"""Time-based rules: silent communities and missed isolation checks.

Evaluated periodically (not per event): each pass computes which conditions
hold now, raises alerts for them, and resolves open alerts of these rules
whose condition has cleared (the report arrived, the check was done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import store
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.raising import Routing, matching_silence, notifications_for_step, raise_alert
from zhibao_alerts.tables import alerts, community_activity, daily_reports, isolations
from zhibao_shared.hierarchy import Level

log = structlog.get_logger(__name__)

WATCHED_RULES = ("missing_daily_report", "no_events", "missed_isolation_check")
#: The missed-check alert of a community is one alert while any check stays overdue.
OVERDUE = "overdue"


class Watchdog:
    """Raises and clears the time-based alerts."""

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Callable[[], Rules],
        routing: Callable[[], Routing],
        timezone: str,
        clock: Callable[[], datetime],
        caught_up: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._engine = engine
        self._caught_up = caught_up
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock

    async def tick(self) -> None:
        """One evaluation of every time-based rule, once the event backlog is applied.

        While a backlog waits (after an outage of this service), the reports and
        checks it holds have not been seen yet: judging silence then would page
        every community whose report is merely still in the queue.
        """
        if self._caught_up is not None and not await self._caught_up():
            log.info("watchdog_waits_for_backlog")
            return
        now, rules, routing = self._clock(), self._rules(), self._routing()
        async with self._engine.begin() as conn:
            holding = [
                *await self._missing_reports(conn, rules, routing, now),
                *await self._missed_checks(conn, rules, now),
            ]
            if rules.silence.no_events_hours is not None:
                holding += await self._no_events(conn, rules, now)
            for trigger in holding:
                await raise_alert(conn, trigger, routing, now, self._zone)
            await self._clear(conn, {t.dedup_key for t in holding}, now)
            await self._silence(conn, routing, now)
            await self._unsilence(conn, routing, now)

    async def _active_communities(
        self, conn: AsyncConnection, rules: Rules, now: datetime
    ) -> dict[str, datetime]:
        since = now - timedelta(days=rules.silence.active_days)
        rows = await conn.execute(
            select(community_activity).where(community_activity.c.last_event_at >= since)
        )
        return {r.community: r.last_event_at for r in rows}

    async def _missing_reports(
        self, conn: AsyncConnection, rules: Rules, routing: Routing, now: datetime
    ) -> list[Trigger]:
        local = now.astimezone(self._zone)
        due = timedelta(hours=rules.silence.report_due_hours)
        day = local.date() - timedelta(days=1)
        while datetime.combine(day, time(), self._zone) + due > local:
            day -= timedelta(days=1)
        active = await self._active_communities(conn, rules, now)
        reported = set(
            (
                await conn.execute(
                    select(daily_reports.c.community).where(daily_reports.c.day == day)
                )
            ).scalars()
        )
        communities = {u.code for u in routing.registry.at_level(Level.COMMUNITY)}
        return [
            Trigger(
                rule="missing_daily_report",
                unit=code,
                window=day.isoformat(),
                severity=rules.silence.severity,
                summary_zh=f"社区 {code} 未在截止时间前报送 {day} 日报",
                summary_en=f"Community {code} has not closed {day} (daily report overdue)",
                day=day,
            )
            for code in sorted(set(active) & communities - reported)
        ]

    async def _no_events(self, conn: AsyncConnection, rules: Rules, now: datetime) -> list[Trigger]:
        """Communities in a declared response period that have sent nothing for N hours.

        The window is the time of the community's last event: the alert stays one
        alert for as long as the community stays quiet, and clears when it speaks.
        """
        hours = rules.silence.no_events_hours or 0
        active = await self._active_communities(conn, rules, now)
        quiet = {
            code: last
            for code, last in active.items()
            if now - last >= timedelta(hours=hours) and rules.silence.responding(code, now)
        }
        return [
            Trigger(
                rule="no_events",
                unit=code,
                window=last.isoformat(),
                severity=rules.silence.severity,
                summary_zh=f"社区 {code} 已 {hours:g} 小时无任何上报",
                summary_en=f"Community {code} has sent nothing for {hours:g} h",
                day=now.astimezone(self._zone).date(),
            )
            for code, last in sorted(quiet.items())
        ]

    async def _missed_checks(
        self, conn: AsyncConnection, rules: Rules, now: datetime
    ) -> list[Trigger]:
        hours = rules.isolation.missed_check_hours
        overdue = now - timedelta(hours=hours)
        rows = await conn.execute(
            select(isolations.c.community, func.count())
            .where(isolations.c.active == 1, isolations.c.last_check_at < overdue)
            .group_by(isolations.c.community)
        )
        day = now.astimezone(self._zone).date()
        return [
            Trigger(
                rule="missed_isolation_check",
                unit=community,
                window=OVERDUE,
                severity=rules.isolation.severity,
                summary_zh=f"社区 {community} 有 {count} 名隔离人员超过 {hours:g} 小时未监测",
                summary_en=f"{count} isolated in {community}: no check for {hours:g} h",
                day=day,
            )
            for community, count in rows
        ]

    @staticmethod
    async def _silence(conn: AsyncConnection, routing: Routing, now: datetime) -> None:
        """Firing alerts matched by a silence created since stop escalating and reminding."""
        rows = (await conn.execute(select(alerts).where(alerts.c.state == "firing"))).all()
        for alert in rows:
            silence = await matching_silence(conn, alert, routing, now)
            if silence is not None:
                await store.update_alert(conn, alert.id, state="silenced")
                await store.note(conn, alert.id, now, "silenced", detail=f"silence {silence}")

    @staticmethod
    async def _unsilence(conn: AsyncConnection, routing: Routing, now: datetime) -> None:
        """Alerts whose silence has ended fire again (and are notified now, from step 0)."""
        rows = (await conn.execute(select(alerts).where(alerts.c.state == "silenced"))).all()
        for alert in rows:
            if await matching_silence(conn, alert, routing, now) is None:
                notified = await store.alert_notifications(conn, alert.id)
                reason = f"unsilenced-{now:%Y%m%dT%H%M%S}" if notified else "fired"
                await store.update_alert(
                    conn,
                    alert.id,
                    state="firing",
                    fired_at=now,
                    last_notified_at=now,
                    escalation_step=0,
                )
                await store.note(conn, alert.id, now, "unsilenced", actor="system")
                await store.enqueue(conn, notifications_for_step(alert, 0, reason, routing, now))

    @staticmethod
    async def _still_unreported(conn: AsyncConnection, community: str, day: date) -> bool:
        found = await conn.scalar(
            select(func.count())
            .select_from(daily_reports)
            .where(daily_reports.c.community == community, daily_reports.c.day == day)
        )
        return not found

    async def _clear(self, conn: AsyncConnection, holding: set[str], now: datetime) -> None:
        """Resolve open time-based alerts whose condition no longer holds.

        A missing daily report clears only when that day's report arrives (a later
        deadline passing does not make an earlier day reported).
        """
        rows = await conn.execute(
            select(
                alerts.c.id, alerts.c.dedup_key, alerts.c.rule, alerts.c.unit, alerts.c.day
            ).where(alerts.c.state.in_(store.OPEN_STATES), alerts.c.rule.in_(WATCHED_RULES))
        )
        for alert_id, key, rule, unit, day in rows.all():
            if rule == "missing_daily_report" and await self._still_unreported(conn, unit, day):
                continue
            if key not in holding:
                await store.update_alert(conn, alert_id, state="resolved", resolved_at=now)
                await store.note(
                    conn,
                    alert_id,
                    now,
                    "resolved",
                    actor="system",
                    detail="the condition has cleared",
                )
