"""The data-quality scorecard of a unit and its children over a period (read side)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.domain import quality as q
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.reader import UnknownUnit
from zhibao_aggregator.storage import quality as store
from zhibao_aggregator.storage.audit import rejected_events
from zhibao_shared.hierarchy import Level, Registry, Unit


class RejectionCounts(Protocol):
    """Events intake rejected per (community, reason) with an event day in ``first``..``last``.

    Rejections are known only to intake's audit trail; the audit projection answers this.
    """

    async def __call__(
        self, communities: Sequence[str], first: date, last: date
    ) -> Mapping[tuple[str, str], int]:
        """The counts (absent: none rejected)."""
        ...


def _shared_prefix(codes: set[str]) -> str:
    """The longest code prefix all ``codes`` share (their nearest common unit, or less)."""
    low, high = min(codes), max(codes)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]


@dataclass(frozen=True)
class AuditRejections:
    """Rejections as the audit trail's read model has them (:mod:`..storage.audit`):
    events intake refused, per community and reason, received in the period."""

    engine: AsyncEngine

    async def __call__(
        self, communities: Sequence[str], first: date, last: date
    ) -> Mapping[tuple[str, str], int]:
        """The counts of ``communities`` (absent: none rejected)."""
        wanted = set(communities)
        if not wanted:
            return {}
        async with self.engine.connect() as conn:
            rows = await rejected_events(conn, _shared_prefix(wanted), first, last)
        counts: Counter[tuple[str, str]] = Counter()
        for row in rows:
            if row.community in wanted:
                counts[(row.community, row.reason)] += row.count
        return counts


@dataclass(frozen=True)
class _Flags:
    """Per community, the closes flagged by the consistency checks."""

    zero: set[tuple[str, date]] = field(default_factory=set)
    differing: dict[tuple[str, date], dict[str, dict[str, int]]] = field(default_factory=dict)

    def under(self, code: str) -> tuple[int, int, int]:
        """Contradicted zero reports, differing declarations and flagged closes under ``code``."""
        zero = {key for key in self.zero if key[0].startswith(code)}
        differing = {key for key in self.differing if key[0].startswith(code)}
        return len(zero), len(differing), len(zero | differing)

    def listed(self, community: str) -> list[dict[str, Any]]:
        """A community's flagged closes, by day."""
        out: list[dict[str, Any]] = []
        for key in sorted(self.zero | set(self.differing)):
            if key[0] != community:
                continue
            out.append(
                {
                    "date": key[1].isoformat(),
                    "zero_contradicted": key in self.zero,
                    "counts_differing": self.differing.get(key, {}),
                }
            )
        return out


@dataclass
class QualityReader:
    """Answers scorecard queries from maintained counters and stored daily closes."""

    engine: AsyncEngine
    registry: Registry
    calendar: Calendar
    report_due_after: timedelta
    case_report_limit: timedelta
    weights: q.Weights
    rejections: RejectionCounts

    def due_through(self, last: date, now: datetime | None = None) -> date:
        """The last day up to ``last`` whose daily close was due by ``now``."""
        now = now or datetime.now(UTC)
        day = min(last, self.calendar.today(now))
        while self.calendar.start_of(day) + self.report_due_after > now:
            day -= timedelta(days=1)
        return day

    async def scorecard(self, code: str, first: date, last: date) -> dict[str, Any]:
        """The unit's scorecard and each child's, over ``first``..``last`` (district days)."""
        unit = self.registry.get(code)
        if unit is None:
            raise UnknownUnit(code)
        children = self.registry.children(code)
        units = [unit, *children]
        communities = [c.code for c in self.registry.communities_under(code)]
        due = self.due_through(last)
        days_due = max(0, (due - first).days + 1)
        async with self.engine.connect() as conn:
            sums = await store.period_sums(conn, [u.code for u in units], first, last, due)
            lasts = await store.last_event_days(
                conn, sorted({*(u.code for u in units), *communities}), last
            )
            flags = await self._flags(conn, code, communities, first, last)
        rejected = _by_unit(await self.rejections(communities, first, last), units)

        def card(u: Unit) -> dict[str, Any]:
            under = [c for c in communities if c.startswith(u.code)]
            zero, differing, flagged = flags.under(u.code)
            counts = q.PeriodCounts(
                communities=len(under),
                days_due=days_due,
                sums=sums[u.code],
                last_event=lasts.get(u.code),
                never_reported=sum(1 for c in under if c not in lasts),
                rejected=rejected[u.code],
                zero_contradicted=zero,
                counts_differing=differing,
                flagged_closes=flagged,
            )
            out: dict[str, Any] = {
                "code": u.code,
                "name": u.name,
                "name_en": u.name_en,
                "level": u.level.value,
                "quality": q.scorecard(counts, last, self.weights),
            }
            if u.level is Level.COMMUNITY:
                out["flags"] = flags.listed(u.code)
            return out

        return {
            "unit": card(unit),
            "from": first.isoformat(),
            "to": last.isoformat(),
            "closes_due_through": due.isoformat() if days_due else None,
            "case_report_limit_hours": self.case_report_limit.total_seconds() / 3600,
            "weights": self.weights.as_dict(),
            "children": [card(child) for child in children],
        }

    async def _flags(
        self, conn: Any, code: str, communities: list[str], first: date, last: date
    ) -> _Flags:
        zero = await store.zero_contradictions(conn, communities, first, last)
        declared = await store.declared_counts(conn, code, first, last)
        counted = await store.counted(conn, sorted(declared), first, last)
        differing = {
            key: found
            for key, values in declared.items()
            if (found := q.count_differences(values, counted.get(key, {})))
        }
        return _Flags(zero, differing)


def _by_unit(
    found: Mapping[tuple[str, str], int], units: Sequence[Unit]
) -> dict[str, dict[str, int]]:
    """Rejections per unit and reason (a community counts in each unit above it)."""
    out: dict[str, dict[str, int]] = {u.code: defaultdict(int) for u in units}
    for (community, reason), count in found.items():
        for u in units:
            if community.startswith(u.code):
                out[u.code][reason] += count
    return {code: dict(reasons) for code, reasons in out.items()}
