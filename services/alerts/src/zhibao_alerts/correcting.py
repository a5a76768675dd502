"""Applying corrections (``zhibao.correction.v1``) inside the handler's transaction.

Every applied event is recorded as it counts now (``event_records``). A correction of a
recorded event takes back what the event contributed (its fever at a place, its count
in the daily series, its person's isolation, its closed day) and the handler applies
the event as corrected; the alerts raised on the withdrawn evidence are judged again
here: one left without evidence is resolved with the correction's reason, one that still
holds takes the new figures. A correction of an event not seen yet is held and applied
with the event when it arrives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_alerts import correction_store, metrics, store
from zhibao_alerts.domain import clusters, triggers
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.domain.corrections import (
    Change,
    Decision,
    Judge,
    Precedence,
    Recorded,
    as_counted,
    corrected_detail,
    deciding,
    decision_of,
    rebuild,
    series_keys,
    withdrawn_detail,
)
from zhibao_alerts.domain.ears import EarsPoint
from zhibao_alerts.place_names import place_name
from zhibao_alerts.raising import EXPIRED, Raised
from zhibao_alerts.store import IsolationNote, _isolation_after
from zhibao_shared.events import (
    MAX_EVENT_AGE,
    EventType,
    PublishedCase,
    PublishedCorrection,
    PublishedEvent,
    PublishedIsolation,
)
from zhibao_shared.places import Places

log = structlog.get_logger(__name__)

#: A daily series: (unit, metric, day).
Series = tuple[str, str, date]
#: What EARS says on a series' day: its alarms (none: it holds no more).
Verdicts = Mapping[Series, Sequence[tuple[triggers.Trigger, EarsPoint]]]
#: Alerts a correction can withdraw: open, or recorded from history.
WITHDRAWABLE = (*store.OPEN_STATES, EXPIRED)


@dataclass
class Prepared:
    """A batch's events once the corrections held for them are applied."""

    #: the new events as they count (a replaced one with its new data)
    counted: list[PublishedEvent] = field(default_factory=list)
    #: new events that count as absent (retracted before they arrived)
    absent: list[PublishedEvent] = field(default_factory=list)
    #: corrections of events applied already (or earlier in the batch): see :func:`changes`
    later: list[Decision] = field(default_factory=list)


def _ignore(decisions: Iterable[tuple[Decision, str]], event_type: str) -> None:
    """Log and count corrections that may not change their event, with why."""
    for decision, why in decisions:
        metrics.CORRECTIONS_IGNORED.labels(why).inc()
        log.warning(
            "correction_ignored",
            reason=why,
            correction=decision.key,
            names=decision.type,
            event_type=event_type,
        )


def _applied(decision: Decision) -> None:
    metrics.CORRECTIONS_APPLIED.labels(decision.action).inc()


async def prepare(
    conn: AsyncConnection, events: Sequence[PublishedEvent], judge: Judge, now: datetime
) -> Prepared:
    """Split a batch (in stream order) into its events as they count and the corrections
    to apply after them; record the events, hold corrections of events not seen yet."""
    originals = {
        e.dedup_key: (n, e) for n, e in enumerate(events) if not isinstance(e, PublishedCorrection)
    }
    decisions = [
        (n, decision_of(e)) for n, e in enumerate(events) if isinstance(e, PublishedCorrection)
    ]
    known = await correction_store.records(conn, {d.corrects for _, d in decisions})
    prepared = Prepared()
    early: list[Decision] = []
    for n, decision in decisions:
        original = originals.get(decision.corrects)
        if decision.corrects in known or (original is not None and original[0] < n):
            prepared.later.append(decision)
        else:
            early.append(decision)
    waiting = [d for d in early if d.corrects not in originals]
    if waiting:
        metrics.CORRECTIONS_HELD.inc(len(waiting))
        await correction_store.forget_held_before(conn, now - MAX_EVENT_AGE)
        await correction_store.hold(conn, waiting)
    held = await correction_store.held_for(conn, originals) if originals else []
    by_event: dict[str, list[Decision]] = defaultdict(list)
    for decision in [*held, *(d for d in early if d.corrects in originals)]:
        by_event[decision.corrects].append(decision)
    rows = [
        _record_new(event, by_event.get(key, []), judge, prepared)
        for key, (_, event) in originals.items()
    ]
    await correction_store.add_records(conn, rows)
    if held:
        await correction_store.release(conn, {d.corrects for d in held})
    return prepared


def _record_new(
    event: PublishedEvent, decisions: list[Decision], judge: Judge, prepared: Prepared
) -> dict[str, Any]:
    """A new event as the corrections that came before it decide it: noted in
    ``prepared``; returns its record."""
    if not decisions and judge.counts_nothing(event):  # most screenings: no fever
        prepared.counted.append(event)
        person = getattr(event.data, "person", None)
        return correction_store.uncounted_values(
            event.dedup_key,
            event.type.value,
            event.subject,
            event.time,
            judge.day(event),
            person.pid if person is not None else None,
            event.reporterlevel,
        )
    bare = Recorded(
        event.dedup_key, event.type.value, event.subject, event.time, None, event.reporterlevel
    )
    decision, ignored = deciding(decisions, bare, None)
    _ignore(ignored, event.type.value)
    counted: PublishedEvent | None = event
    if decision is not None:
        _applied(decision)
        counted = None
        if not decision.retracts and decision.data is not None:
            counted = rebuild(bare, decision.data, event.reporter, event.receivedat)
    if counted is None:
        prepared.absent.append(event)
        day = judge.day(event)
        decided = decision.precedence(bare.type) if decision is not None else None
        return correction_store.record_values(bare, day, None, decided)
    prepared.counted.append(counted)
    return _record_of(bare, counted, judge, decision.precedence(bare.type) if decision else None)


def _record_of(
    bare: Recorded,
    counted: PublishedEvent,
    judge: Judge,
    decided: Precedence | None,
) -> dict[str, Any]:
    """The record of an event counting as ``counted`` (its data kept only when it counts
    towards anything)."""
    day = judge.day(counted)
    facts = judge.facts(counted, bare.community, day)
    data = counted.data.model_dump(mode="json", exclude_none=True) if facts.counts else None
    recorded = Recorded(bare.key, bare.type, bare.community, bare.at, data, bare.level)
    return correction_store.record_values(recorded, day, facts.pid, decided)


async def changes(conn: AsyncConnection, later: Sequence[Decision], judge: Judge) -> list[Change]:
    """Apply corrections to their recorded events: the records take the last decision;
    returns the corrections that change what their event contributes."""
    if not later:
        return []
    rows = await correction_store.records(conn, {d.corrects for d in later})
    groups: dict[str, list[Decision]] = defaultdict(list)
    for decision in later:
        groups[decision.corrects].append(decision)
    found: list[Change] = []
    updates: list[dict[str, Any]] = []
    for key, group in groups.items():
        row = rows[key]
        record = row.recorded
        last, ignored = deciding(group, record, row.decided)
        _ignore(ignored, record.type)
        if last is None:  # an earlier correction than the one that decided already
            continue
        decision = last
        _applied(decision)
        before = as_counted(record)
        after = None
        if not decision.retracts and decision.data is not None:
            after = rebuild(record, decision.data, decision.reporter, decision.receivedat)
        local = record.at.astimezone(judge.zone).date()
        was = judge.facts(before, record.community, local)
        now = judge.facts(after, record.community, local)
        decided = decision.precedence(record.type)
        if after is None:
            bare = record_as(record)
            updates.append(correction_store.record_values(bare, local, None, decided))
        else:
            updates.append(_record_of(record_as(record), after, judge, decided))
        if was != now and (was.counts or now.counts):
            found.append(Change(record, decision, before, after, was, now))
    await correction_store.update_records(conn, updates)
    return found


def record_as(record: Recorded) -> Recorded:
    """A record's identity without its data."""
    return Recorded(record.key, record.type, record.community, record.at, None, record.level)


@dataclass
class Undone:
    """What taking back the corrected events' contributions changed."""

    #: (unit, metric, day) -> how much the daily series lost
    deltas: dict[Series, int] = field(default_factory=lambda: defaultdict(int))
    #: the cluster windows (community, place, day) that lost a fever, and the correction
    windows: dict[tuple[str, str, date], Decision] = field(default_factory=dict)


async def undo(
    conn: AsyncConnection, found: Sequence[Change], judge: Judge, lengths: Sequence[int]
) -> Undone:
    """Take back what the corrected events contributed to cluster detection and to the
    daily series (a person stays counted on a day while another of their events counts)."""
    undone = Undone()
    by_key = {c.record.key: c for c in found}
    removed = await correction_store.remove_fevers(
        conn, {c.record.key for c in found if c.was.place is not None}
    )
    for fever in removed:
        if fever.cluster_day is not None:
            window = (fever.community, fever.place, fever.cluster_day)
            undone.windows[window] = by_key[fever.key].decision
    named: set[tuple[str, str, date, str]] = set()
    for change in found:
        pid = change.was.pid
        for series in series_keys(change.was, lengths):
            if pid is None:
                undone.deltas[series] -= 1
            else:
                named.add((*series, pid))
    if named:
        still = await _still_counted(conn, {p for *_, p in named}, judge, lengths)
        gone = await correction_store.counted_person_days(conn, named - still)
        await correction_store.uncount_person_days(conn, gone)
        for unit, metric, day, _pid in gone:
            undone.deltas[(unit, metric, day)] -= 1
    return undone


async def _still_counted(
    conn: AsyncConnection, pids: set[str], judge: Judge, lengths: Sequence[int]
) -> set[tuple[str, str, date, str]]:
    """The (unit, metric, day, pid) these persons' events count in as they are recorded."""
    types = {EventType.SCREENING.value, EventType.CASE.value}
    counted: set[tuple[str, str, date, str]] = set()
    for record in await correction_store.counted_of_persons(conn, pids, types):
        facts = _facts(record, judge)
        if facts.pid is not None:
            counted |= {(*s, facts.pid) for s in series_keys(facts, lengths)}
    return counted


def _facts(record: Recorded, judge: Judge) -> Any:
    """A record's facts as it counts now."""
    local = record.at.astimezone(judge.zone).date()
    return judge.facts(as_counted(record), record.community, local)


async def withdraw(conn: AsyncConnection, alert: Any, decision: Decision, now: datetime) -> None:
    """An alert whose evidence a correction withdrew: a timeline entry saying so (by the
    correction's reporter, with its reason), and resolved with that reason unless it is
    already; its notifications not sent yet are withdrawn. Never deleted: an
    acknowledged alert stays, with its timeline."""
    detail = withdrawn_detail(decision)
    actor = decision.reporter
    await store.note(conn, alert.id, now, "evidence_withdrawn", actor=actor, detail=detail)
    if alert.state in WITHDRAWABLE:
        await store.update_alert(
            conn, alert.id, state="resolved", resolved_at=now, next_action_at=None
        )
        await store.note(conn, alert.id, now, "resolved", actor="system", detail=detail)
        await correction_store.withdraw_unsent(conn, alert.id, detail)


async def amend(
    conn: AsyncConnection,
    alert: Any,
    trigger: triggers.Trigger,
    decision: Decision,
    now: datetime,
    upper_bound: float | None = None,
) -> None:
    """An alert that still holds after a correction takes the new figures."""
    if alert.summary_en == trigger.summary_en:
        return
    values: dict[str, Any] = {"summary_zh": trigger.summary_zh, "summary_en": trigger.summary_en}
    if upper_bound is not None:
        values["upper_bound"] = upper_bound
    await store.update_alert(conn, alert.id, **values)
    detail = corrected_detail(decision, trigger.summary_en)
    await store.note(conn, alert.id, now, "corrected", actor=decision.reporter, detail=detail)


async def withdraw_immediate(
    conn: AsyncConnection, found: Sequence[Change], judge: Judge, now: datetime
) -> list[PublishedEvent]:
    """Immediate alerts (a case, a breach) left without evidence: a person's case alert
    while no other report of theirs of that classification counts in its community, a
    community's breach alert while no other breach of that day counts.

    Returns the reports of those persons left in other communities (the case moved by
    a report there and a retraction here): alerted again, where they are now."""
    moved: list[PublishedEvent] = []
    for change in found:
        key = change.was.trigger
        if key is None or key == change.now.trigger:
            continue
        rule = key.split(":", 1)[0]
        if isinstance(change.before, PublishedCase) and change.was.pid is not None:
            pid = change.was.pid
            others = await correction_store.counted_of_persons(conn, {pid}, {EventType.CASE.value})
            same = [r for r in others if _rule_of(_facts(r, judge).trigger) == rule]
            if any(r.community == change.was.community for r in same):
                continue
            alerts = await correction_store.person_alerts(conn, rule, pid[: triggers.PID_SHOWN])
            if same:  # reported elsewhere too: only an alert here moves there
                alerts = [a for a in alerts if a.unit == change.was.community]
                if not alerts:
                    continue
                # the retraction is the news (paged as received now, not when reported)
                news = {"receivedat": change.decision.receivedat}
                moved += [e.model_copy(update=news) for e in map(as_counted, same) if e]
            await correction_store.forget_case_persons(conn, {(rule, pid)})
        else:
            day = (change.was.community, change.was.day)
            others = await correction_store.counted_of_days(conn, change.record.type, {day})
            if any(_facts(r, judge).trigger == key for r in others):
                continue
            alerts = await correction_store.alerts_by_key(conn, {key})
        for alert in alerts:
            await withdraw(conn, alert, change.decision, now)
    return sorted(moved, key=lambda e: (e.time, e.dedup_key))


def _rule_of(key: str | None) -> str | None:
    return key.split(":", 1)[0] if key is not None else None


async def rejudge_clusters(
    conn: AsyncConnection,
    windows: Mapping[tuple[str, str, date], Decision],
    rules: Rules,
    now: datetime,
    places: Places | None = None,
) -> None:
    """Cluster alerts that lost a fever: resolved when the fevers left no longer make a
    cluster, else they say the new count (naming a registered place by its name)."""
    if not windows:
        return
    members = await correction_store.cluster_members(conn, windows)
    keyed = {w: triggers.cluster(w[0], w[1], 0, rules, w[2]).dedup_key for w in windows}
    latest = {a.dedup_key: a for a in await correction_store.alerts_by_key(conn, keyed.values())}
    span = timedelta(hours=rules.cluster.window_hours)
    for window, decision in windows.items():
        alert = latest.get(keyed[window])
        if alert is None:
            continue
        fevers = members.get(window, [])
        found = clusters.clusters(fevers, {f.key for f in fevers}, span, rules.cluster.min_fevers)
        if not found:
            await withdraw(conn, alert, decision, now)
            continue
        persons = max(c.persons for c in found)
        community, place, day = window
        name = place_name(places, place)
        trigger = triggers.cluster(community, place, persons, rules, day, name=name)
        await amend(conn, alert, trigger, decision, now)


async def rejudge_ears(
    conn: AsyncConnection,
    verdicts: Verdicts,
    decisions: Mapping[Series, Decision],
    rules: Rules,
    now: datetime,
) -> list[Raised]:
    """EARS on the days a correction changed: an open alarm that no longer holds is
    resolved with the reason, one that holds says the new figures, and a new alarm is
    returned to raise."""
    keys = {
        (series, f"{triggers.ears_rule(m, series[1])}:{series[0]}:{series[2].isoformat()}")
        for series in verdicts
        for m in rules.aberration.methods
    }
    latest = {
        a.dedup_key: a for a in await correction_store.alerts_by_key(conn, {k for _, k in keys})
    }
    raised: list[Raised] = []
    for series, key in sorted(keys):
        alarms = {t.dedup_key: (t, p) for t, p in verdicts[series]}
        alert = latest.get(key)
        holding = alert is not None and alert.state in WITHDRAWABLE
        if key in alarms:
            trigger, point = alarms[key]
            if holding:
                await amend(conn, alert, trigger, decisions[series], now, point.upper_bound)
            else:
                raised.append((trigger, point.upper_bound))
        elif holding:
            await withdraw(conn, alert, decisions[series], now)
    return raised


async def recompute_isolations(conn: AsyncConnection, pids: set[str]) -> None:
    """Persons' isolations folded again from their recorded isolation events, in event
    time (a retracted end reopens one, a retracted check is no check)."""
    if not pids:
        return
    records = await correction_store.counted_of_persons(conn, pids, {EventType.ISOLATION.value})
    rows: dict[str, dict[str, Any] | None] = dict.fromkeys(pids)
    for record in records:
        event = as_counted(record)
        if not isinstance(event, PublishedIsolation):
            continue
        pid = event.data.person.pid
        note = IsolationNote(pid, record.community, event.data.action.value, record.at, record.key)
        rows[pid] = _isolation_after(rows.get(pid), note)
    await correction_store.set_isolations(conn, rows)


async def recompute_reports(conn: AsyncConnection, found: Sequence[Change]) -> None:
    """Which of the corrected daily reports' days are still closed."""
    days = {
        (facts.community, facts.report_day)
        for change in found
        for facts in (change.was, change.now)
        if facts.report_day is not None
    }
    if not days:
        return
    records = await correction_store.counted_of_days(conn, EventType.DAILY_REPORT.value, days)
    closed = {
        (r.community, date.fromisoformat(r.data["date"])) for r in records if r.data is not None
    }
    await correction_store.set_daily_reports(conn, closed & days, days)


def isolated_persons(found: Sequence[Change]) -> set[str]:
    """The persons whose isolation a correction changed."""
    return {
        facts.pid
        for change in found
        for facts in (change.was, change.now)
        if facts.isolation is not None and facts.pid is not None
    }


def series_decisions(found: Sequence[Change], lengths: Sequence[int]) -> dict[Series, Decision]:
    """The correction behind each daily series a correction changed (the last one)."""
    decided: dict[Series, Decision] = {}
    for change in sorted(found, key=lambda c: c.decision.order):
        for facts in (change.was, change.now):
            for series in series_keys(facts, lengths):
                decided[series] = change.decision
    return decided
