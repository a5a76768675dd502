"""Time-based rules: silent communities and missed isolation checks.

Evaluated periodically (not per event): each pass computes which conditions
hold now, raises alerts for them, and resolves open alerts of these rules
whose condition has cleared (the report arrived, the check was done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import store
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.domain.triggers import Trigger
from zhibao_alerts.raising import Routing, notifications_for_step, raise_alerts, silence_for
from zhibao_alerts.tables import (
    alerts,
    community_activity,
    community_watch,
    daily_reports,
    isolations,
    silences,
)
from zhibao_shared.db import conflict_insert
from zhibao_shared.hierarchy import Level
from zhibao_shared.settings import DAILY_REPORT_DEADLINE, report_due_at

log = structlog.get_logger(__name__)

WATCHED_RULES = ("missing_daily_report", "no_events", "missed_isolation_check", "silent_community")
#: The window of a silent community that never sent anything.
NEVER = "never"
#: How far back a pass looks for silences that started or ended (clock skew, commits
#: racing the pass).
SILENCE_SLACK = timedelta(minutes=1)
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
        on_alert: Callable[[], None] | None = None,
        report_deadline: timedelta = DAILY_REPORT_DEADLINE,
    ) -> None:
        self._timezone = timezone
        self._report_deadline = report_deadline
        self._engine = engine
        self._caught_up = caught_up
        self._on_alert = on_alert
        #: the last pass that matched alerts against silences, and the newest silence
        #: then: alerts are matched again only when a silence was made, started or ended
        #: since, not every pass
        self._matched_at: datetime | None = None
        self._newest_silence = 0
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
            silent = await self._silent_communities(conn, rules, routing, now)
            watched = await self._open_watched(conn)
            opened = await raise_alerts(
                conn, [(t, None) for t in _news(holding, watched)], routing, now, self._zone
            )
            quiet = await raise_alerts(
                conn, [(t, None) for t in _news(silent, watched)], routing, now, self._zone
            )
            await self._repeat_every(conn, quiet, rules.silence.silent_repeat_hours)
            opened += quiet
            holding += silent
            await self._clear(conn, watched, {t.dedup_key for t in holding}, now)
            changed = await self._match_silences(conn, routing, now)
        if (opened or changed) and self._on_alert is not None:
            self._on_alert()

    async def _match_silences(self, conn: AsyncConnection, routing: Routing, now: datetime) -> bool:
        """Silence and unsilence alerts when a silence was made, started or ended since
        the last pass; True when notifications were queued."""
        newest = await conn.scalar(select(func.max(silences.c.id))) or 0
        if self._matched_at is not None and newest == self._newest_silence:
            # the API stamps with its own clock: look back a little for its edits
            since = self._matched_at - SILENCE_SLACK
            changed = await conn.scalar(
                select(func.count())
                .select_from(silences)
                .where(
                    or_(
                        silences.c.starts_at.between(since, now),
                        silences.c.ends_at.between(since, now),
                    )
                )
            )
            if not changed:
                self._matched_at = now
                return False
        await self._silence(conn, routing, now)
        unsilenced = await self._unsilence(conn, routing, now)
        self._matched_at, self._newest_silence = now, newest
        return unsilenced

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
        """Active communities that have not closed the last day whose deadline passed.

        A community is asked only for days from its first day of data on: on a new
        deployment (or a community's first day on it) nobody is paged for the day before,
        which nobody reported through Zhibao.
        """
        day = now.astimezone(self._zone).date()  # a deadline may fall on the day itself
        while report_due_at(day, self._timezone, self._report_deadline) > now:
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
        missing = set(active) & communities - reported
        began = await store.first_days(conn, missing)
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
            for code in sorted(missing)
            if began.get(code, day) <= day  # unknown (data from before it was kept): asked
        ]

    async def _silent_communities(
        self, conn: AsyncConnection, rules: Rules, routing: Routing, now: datetime
    ) -> list[Trigger]:
        """Communities of the registry silent for longer than ``active_days``: nothing
        since their last event, or since they were first watched when they never sent
        anything (a new deployment does not page every community at once).

        The window is the last event's time (``never``): one alert while the community
        stays silent, cleared when it speaks.
        """
        communities = {u.code for u in routing.registry.at_level(Level.COMMUNITY)}
        last = {
            r.community: r.last_event_at
            for r in await conn.execute(select(community_activity))
            if r.community in communities
        }
        since = await self._watched_since(conn, communities, now)
        quiet = timedelta(days=rules.silence.active_days)
        silent = {
            code: last.get(code)
            for code in communities
            if now - max(since[code], last.get(code) or since[code]) >= quiet
        }
        days = rules.silence.active_days
        return [
            Trigger(
                rule="silent_community",
                unit=code,
                window=at.isoformat() if at else NEVER,
                severity=rules.silence.severity,
                summary_zh=f"社区 {code} 已超过 {days} 天无任何上报"
                if at
                else f"社区 {code} 从未上报",
                summary_en=f"Community {code} has sent nothing for over {days} days"
                if at
                else f"Community {code} has never sent anything",
                day=now.astimezone(self._zone).date(),
            )
            for code, at in sorted(silent.items())
        ]

    @staticmethod
    async def _watched_since(
        conn: AsyncConnection, communities: set[str], now: datetime
    ) -> dict[str, datetime]:
        """Since when each community is watched (those seen for the first time: now)."""
        known = {r.community: r.since for r in await conn.execute(select(community_watch))}
        new = sorted(communities - set(known))
        if new:
            # another instance's pass may watch the same communities first: its rows stand
            await conn.execute(
                conflict_insert(conn, community_watch).on_conflict_do_nothing(),
                [{"community": c, "since": now} for c in new],
            )
        return {**known, **{c: now for c in new}}

    @staticmethod
    async def _repeat_every(conn: AsyncConnection, alert_ids: list[int], hours: float) -> None:
        """These alerts are reminded every ``hours`` rather than at their severity's pace."""
        if alert_ids:
            await conn.execute(
                alerts.update().where(alerts.c.id.in_(alert_ids)).values(repeat_minutes=hours * 60)
            )

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
        in_force = await store.active_silences(conn, now)
        for alert in rows:
            silence = silence_for(alert, in_force, routing)
            if silence is not None and await store.move_alert(
                conn, alert.id, "firing", state="silenced"
            ):
                await store.note(conn, alert.id, now, "silenced", detail=f"silence {silence}")

    @staticmethod
    async def _unsilence(conn: AsyncConnection, routing: Routing, now: datetime) -> bool:
        """Alerts whose silence has ended fire again (and are notified now, from step 0);
        True when any did."""
        rows = (await conn.execute(select(alerts).where(alerts.c.state == "silenced"))).all()
        in_force = await store.active_silences(conn, now)
        fired = False
        for alert in rows:
            if silence_for(alert, in_force, routing) is None:
                notified = await store.alert_notifications(conn, alert.id)
                reason = f"unsilenced-{now:%Y%m%dT%H%M%S}" if notified else "fired"
                moved = await store.move_alert(
                    conn,
                    alert.id,
                    "silenced",
                    state="firing",
                    fired_at=now,
                    last_notified_at=now,
                    escalation_step=0,
                    next_action_at=now,
                )
                if not moved:  # acknowledged or resolved meanwhile: that stands
                    continue
                await store.note(conn, alert.id, now, "unsilenced", actor="system")
                await store.enqueue(conn, notifications_for_step(alert, 0, reason, routing, now))
                fired = True
        return fired

    @staticmethod
    async def _open_watched(conn: AsyncConnection) -> list[Any]:
        """The open alerts of the time-based rules (with their summaries)."""
        return list(
            (
                await conn.execute(
                    select(
                        alerts.c.id,
                        alerts.c.dedup_key,
                        alerts.c.rule,
                        alerts.c.unit,
                        alerts.c.day,
                        alerts.c.summary_zh,
                        alerts.c.summary_en,
                    ).where(alerts.c.state.in_(store.OPEN_STATES), alerts.c.rule.in_(WATCHED_RULES))
                )
            ).all()
        )

    async def _clear(
        self, conn: AsyncConnection, watched: Sequence[Any], holding: set[str], now: datetime
    ) -> None:
        """Resolve open time-based alerts (``watched``) whose condition no longer holds.

        A missing daily report clears only when that day's report arrives (a later
        deadline passing does not make an earlier day reported).
        """
        cleared = [row for row in watched if row.dedup_key not in holding]
        reported = await self._reported(
            conn, {(r.unit, r.day) for r in cleared if r.rule == "missing_daily_report"}
        )
        for row in cleared:
            if row.rule == "missing_daily_report" and (row.unit, row.day) not in reported:
                continue
            await store.update_alert(
                conn, row.id, state="resolved", resolved_at=now, next_action_at=None
            )
            await store.note(
                conn, row.id, now, "resolved", actor="system", detail="the condition has cleared"
            )

    @staticmethod
    async def _reported(
        conn: AsyncConnection, wanted: set[tuple[str, date]]
    ) -> set[tuple[str, date]]:
        """Which of these (community, day) have a daily report, in one query."""
        if not wanted:
            return set()
        rows = await conn.execute(
            select(daily_reports.c.community, daily_reports.c.day).where(
                daily_reports.c.community.in_({c for c, _ in wanted}),
                daily_reports.c.day.in_({d for _, d in wanted}),
            )
        )
        return {(c, d) for c, d in rows} & wanted


def _news(holding: Sequence[Trigger], watched: Sequence[Any]) -> list[Trigger]:
    """The conditions that are not already an open alert saying the same: a condition
    that goes on holding is not raised again on every pass (its alert is open, and a
    pass is not an occurrence), one whose figures changed (the number overdue) is."""
    said = {row.dedup_key: (row.summary_zh, row.summary_en) for row in watched}
    return [t for t in holding if said.get(t.dedup_key) != (t.summary_zh, t.summary_en)]
