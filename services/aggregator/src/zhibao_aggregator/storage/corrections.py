"""Applying corrections in the writer's transaction.

A correction takes back what its event counted (the event's footprint, kept with its
dedup key), counts what the correction says instead and refiles the event's fact (a
person's case or isolation history, a daily report), so every figure derived from the
facts follows. A correction whose event has not been applied yet is held (the table
``held_corrections``) and applied in the batch that applies the event. Each event keeps
the order key of the correction that decided it last; one that sorts before it (of a
lower rank, or earlier), arriving later, is counted but changes nothing (see
``domain.corrections.decide``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import contributions as c
from zhibao_aggregator.domain import corrections as correcting
from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain import place_figures as pf
from zhibao_aggregator.domain.corrections import Footprint
from zhibao_aggregator.metrics import CORRECTIONS_HELD, CORRECTIONS_IGNORED
from zhibao_aggregator.storage.facts import (
    CHUNK,
    case_fact,
    case_row,
    histories,
    isolation_fact,
    isolation_row,
    report_facts,
    report_row,
)
from zhibao_aggregator.storage.place_counters import case_places
from zhibao_aggregator.storage.tables import (
    applied_events,
    case_facts,
    daily_reports,
    held_corrections,
    isolation_facts,
)
from zhibao_shared.advisory_locks import lock_names
from zhibao_shared.events import (
    DailyReportData,
    EventType,
    PublishedCaseData,
    PublishedCorrection,
    PublishedIsolationData,
    Retraction,
    parse_published,
    published_payload,
)

if TYPE_CHECKING:
    from zhibao_aggregator.storage.writer import Rules

log = structlog.get_logger(__name__)

#: The footprint stored for a correction itself (a correction is not correctable).
CORRECTION_EFFECT = EventType.CORRECTION.short


def correction_lock(community: str) -> str:
    """The lock name under which a community's events and corrections meet."""
    return f"corrections {community}"


async def apply_corrections(
    conn: AsyncConnection,
    fixes: Sequence[PublishedCorrection],
    originals: Sequence[str],
    rules: Rules,
) -> c.Contribution:
    """Apply the batch's new corrections (``fixes``) and those held for the events just
    applied (``originals``: their dedup keys); hold those whose event is not known."""
    held = await _held_for(conn, originals) if originals else []
    if not fixes and not held:
        return Counter()
    groups: dict[str, list[PublishedCorrection]] = defaultdict(list)
    for one in [*fixes, *held]:
        groups[one.corrected_key].append(one)
    found = await _applied(conn, list(groups))
    await _hold(conn, [one for one in fixes if one.corrected_key not in found])
    await _release(conn, [one.dedup_key for one in held])
    change: c.Contribution = Counter()
    for key in sorted(found):
        change.update(await _correct(conn, key, found[key], groups[key], rules))
    return change


async def _held_for(conn: AsyncConnection, keys: Sequence[str]) -> list[PublishedCorrection]:
    out: list[PublishedCorrection] = []
    for start in range(0, len(keys), CHUNK):
        rows = await conn.execute(
            select(held_corrections.c.payload).where(
                held_corrections.c.corrected_key.in_(keys[start : start + CHUNK])
            )
        )
        for payload in rows.scalars():
            event = parse_published(payload)
            assert isinstance(event, PublishedCorrection)
            out.append(event)
    return out


@dataclass(frozen=True)
class _Applied:
    effect: str | None
    #: the order key of the correction that decided it (``domain.corrections.decided_key``)
    decided: str | None


async def _applied(conn: AsyncConnection, keys: Sequence[str]) -> dict[str, _Applied]:
    out: dict[str, _Applied] = {}
    table = applied_events.c
    for start in range(0, len(keys), CHUNK):
        rows = await conn.execute(
            select(table.dedup_key, table.effect, table.corrected_by, table.ranked_by).where(
                table.dedup_key.in_(keys[start : start + CHUNK])
            )
        )
        for key, effect, corrected_by, ranked_by in rows:
            out[key] = _Applied(effect, correcting.decided_key(corrected_by, ranked_by))
    return out


async def _hold(conn: AsyncConnection, fixes: Sequence[PublishedCorrection]) -> None:
    if not fixes:
        return
    rows = [
        {
            "dedup_key": one.dedup_key,
            "corrected_key": one.corrected_key,
            "payload": published_payload(one).decode(),
        }
        for one in fixes
    ]
    await conn.execute(held_corrections.insert(), rows)
    CORRECTIONS_HELD.inc(len(rows))


async def _release(conn: AsyncConnection, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        await conn.execute(delete(held_corrections).where(held_corrections.c.dedup_key.in_(chunk)))


def _ignore(fixes: Sequence[PublishedCorrection], reason: str) -> None:
    for one in fixes:
        CORRECTIONS_IGNORED.labels(reason).inc()
        log.warning(
            "correction_ignored",
            reason=reason,
            community=one.subject,
            correction=one.id,
            corrects=one.data.corrects.id,
        )


async def _correct(
    conn: AsyncConnection,
    key: str,
    applied: _Applied,
    fixes: Sequence[PublishedCorrection],
    rules: Rules,
) -> c.Contribution:
    """Apply new corrections of the event ``key``: count them, and if one of them is now
    the last, take back what the event counts and count the corrected version."""
    if applied.effect is None:  # applied before footprints were kept: rebuild to correct
        _ignore(fixes, "no_footprint")
        return Counter()
    if applied.effect == CORRECTION_EFFECT:  # a correction is not correctable
        _ignore(fixes, "not_correctable")
        return Counter()
    original = Footprint.decode(applied.effect)
    decision = correcting.decide(original, applied.decided, fixes)
    for one in decision.ignored:
        _ignore([one], correcting.refusal(original, one) or "not_correctable")
    community = key.split(" ", 1)[0]
    change: c.Contribution = Counter()
    if decision.applied:
        change[(community, original.day, m.CORRECTIONS)] += decision.applied
    decider = decision.decider
    if decider is None:
        return change
    after = correcting.corrected(
        original, decider, rules.calendar, rules.fever_c, rules.case_report_limit
    )
    change.update(correcting.counted(community, [original], -1))
    change.update(correcting.counted(community, [after]))
    change.update(pf.placed(community, original.day, original.metrics, original.places, -1))
    change.update(pf.placed(community, after.day, after.metrics, after.places))
    new_data = None if isinstance(decider.data, Retraction) else decider.data.data
    change.update(await _refile(conn, key, community, original, after, new_data, rules))
    await conn.execute(
        update(applied_events)
        .where(applied_events.c.dedup_key == key)
        .values(
            effect=after.encode(),
            corrected_by=correcting.timed_key(decider),
            ranked_by=correcting.order_key(decider, original.full_type),
        )
    )
    return change


async def _refile(
    conn: AsyncConnection,
    key: str,
    community: str,
    before: Footprint,
    after: Footprint,
    data: Any,
    rules: Rules,
) -> c.Contribution:
    """Replace the event's fact (if it counted) by the corrected one (if it counts)."""
    if before.type == EventType.CASE.short:
        return await _refile_case(conn, key, community, before, after, data, rules)
    if before.type == EventType.ISOLATION.short:
        return await _refile_isolation(conn, key, community, before, after, data, rules)
    if before.type == EventType.DAILY_REPORT.short:
        return await _refile_report(conn, key, community, before, after, data, rules)
    return Counter()


def _pids(before: Footprint, after: Footprint) -> tuple[str | None, str | None]:
    old = before.ref if before.metrics and before.ref else None
    new = after.ref if after.metrics and after.ref else None
    return old, new


async def _refile_case(
    conn: AsyncConnection,
    key: str,
    community: str,
    before: Footprint,
    after: Footprint,
    data: PublishedCaseData | None,
    rules: Rules,
) -> c.Contribution:
    old_pid, new_pid = _pids(before, after)
    pids = sorted({p for p in (old_pid, new_pid) if p is not None})
    await lock_names(conn, [f"person {p}" for p in pids])
    found = await histories(conn, case_facts, pids)
    old = {p: [case_fact(r) for r in found.get(p, [])] for p in pids}
    new = {p: [f for f in facts if f.key != key] for p, facts in old.items()}
    if new_pid is not None and data is not None:
        new[new_pid].append(c.CaseFact(before.time, key, community, data.classification))
    if old_pid is not None:
        await conn.execute(
            delete(case_facts).where(case_facts.c.pid == old_pid, case_facts.c.dedup_key == key)
        )
    if new_pid is not None and data is not None:
        await conn.execute(
            case_facts.insert(), [case_row(new_pid, key, before.time, community, data)]
        )
    change: c.Contribution = Counter()
    for p in pids:
        history = c.difference(
            c.case_history(new[p], rules.calendar), c.case_history(old[p], rules.calendar)
        )
        change.update(history)
    change.update(_refiled_places(found, pids, key, before, new_pid, data, rules))
    return change


def _refiled_places(
    found: dict[str, list[Any]],
    pids: list[str],
    key: str,
    before: Footprint,
    new_pid: str | None,
    data: PublishedCaseData | None,
    rules: Rules,
) -> c.Contribution:
    """What refiling a case report changes at its persons' registered places."""
    old = {p: [case_places(r) for r in found.get(p, [])] for p in pids}
    new = {p: [f for f in facts if f.key != key] for p, facts in old.items()}
    if new_pid is not None and data is not None:
        new[new_pid].append(pf.case_places_of(before.time, key, data))
    change: c.Contribution = Counter()
    for p in pids:
        change.update(pf.case_places_change(old[p], new[p], rules.calendar))
    return change


async def _refile_isolation(
    conn: AsyncConnection,
    key: str,
    community: str,
    before: Footprint,
    after: Footprint,
    data: PublishedIsolationData | None,
    rules: Rules,
) -> c.Contribution:
    old_pid, new_pid = _pids(before, after)
    pids = sorted({p for p in (old_pid, new_pid) if p is not None})
    await lock_names(conn, [f"person {p}" for p in pids])
    found = await histories(conn, isolation_facts, pids)
    old = {p: [isolation_fact(r) for r in found.get(p, [])] for p in pids}
    new = {p: [f for f in facts if f.key != key] for p, facts in old.items()}
    if old_pid is not None:
        await conn.execute(
            delete(isolation_facts).where(
                isolation_facts.c.pid == old_pid, isolation_facts.c.dedup_key == key
            )
        )
    if new_pid is not None and data is not None:
        fact = c.IsolationFact(
            before.time, key, community, data.action, data.kind.value, data.until
        )
        new[new_pid].append(fact)
        await conn.execute(isolation_facts.insert(), [isolation_row(new_pid, fact)])
    change: c.Contribution = Counter()
    for p in pids:
        change.update(
            c.difference(
                c.isolation_history(new[p], rules.calendar),
                c.isolation_history(old[p], rules.calendar),
            )
        )
    return change


async def _refile_report(
    conn: AsyncConnection,
    key: str,
    community: str,
    before: Footprint,
    after: Footprint,
    data: DailyReportData | None,
    rules: Rules,
) -> c.Contribution:
    old_day = date.fromisoformat(before.ref) if before.metrics else None
    new_day = date.fromisoformat(after.ref) if after.metrics and data is not None else None
    days = sorted({d for d in (old_day, new_day) if d is not None})
    await lock_names(conn, [f"report {community} {d.isoformat()}" for d in days])
    found = await report_facts(conn, [(community, d) for d in days])
    old = {d: list(found.get((community, d), [])) for d in days}
    new = {d: [f for f in facts if f.key != key] for d, facts in old.items()}
    if old_day is not None:
        await conn.execute(
            delete(daily_reports).where(
                daily_reports.c.community == community,
                daily_reports.c.day == old_day,
                daily_reports.c.dedup_key == key,
            )
        )
    if new_day is not None and data is not None:
        fact = c.ReportFact(before.received_at, key, data.zero)
        new[new_day].append(fact)
        await conn.execute(
            daily_reports.insert(), [report_row(community, new_day, fact, data.counts)]
        )
    change: c.Contribution = Counter()
    cal, due = rules.calendar, rules.report_due_after
    for d in days:
        change.update(
            c.difference(
                c.daily_report(community, d, new[d], cal, due),
                c.daily_report(community, d, old[d], cal, due),
            )
        )
    return change
