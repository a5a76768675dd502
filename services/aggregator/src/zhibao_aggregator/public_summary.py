"""Public summaries: daily releases of key figures for anyone, small counts suppressed.

Day D's figures are released once, at ``start of D + release_after`` (by
default the next day at 10:00, district time, after the 09:00 report
deadline), like a health bulletin. The release is made from the read side at
the first request after that moment, stored, and served unchanged from then
on (also after restarts and rebuilds), so polling between two releases shows
nothing new. Releases chain: each starts from the previous one's state
(:mod:`zhibao_aggregator.domain.public`), so missing ones are made in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from zhibao_aggregator.domain.public import Release, ReleaseRules, UnitState, make_release
from zhibao_aggregator.reader import RollupReader, scalars
from zhibao_aggregator.storage import releases
from zhibao_shared.hierarchy import CODE_LENGTH, Level, Unit

CACHED_RELEASES = 8


class NotPublic(LookupError):
    """The unit exists but its level has no public summary."""


class NotReleased(LookupError):
    """No release for that day: not yet due, or before the first release."""


@dataclass
class PublicSummaries:
    """Makes, stores and serves the daily public releases."""

    reader: RollupReader
    rules: ReleaseRules
    min_level: Level
    release_after: timedelta = timedelta(days=1, hours=10)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Releases already read or made (they never change), the most recent days kept.
    _cache: dict[date, dict[str, Any]] = field(default_factory=dict)

    def is_public(self, unit: Unit) -> bool:
        """True for units at or above the lowest public level."""
        return CODE_LENGTH[unit.level] <= CODE_LENGTH[self.min_level]

    def released_at(self, day: date) -> datetime:
        """When ``day``'s figures are released."""
        return self.reader.calendar.start_of(day) + self.release_after

    def latest_released(self, now: datetime | None = None) -> date:
        """The last day whose release time has passed."""
        now = now or datetime.now(UTC)
        day = self.reader.calendar.day(now - self.release_after) + timedelta(days=1)
        while self.released_at(day) > now:
            day -= timedelta(days=1)
        return day

    def _public_tree(self) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        """Every public unit and how they nest (parent → public children), from the top
        unit(s) of the registry (the province) down."""
        registry = self.reader.registry
        todo = [u.code for u in registry.top() if self.is_public(u)]
        units, groups = list(todo), {}
        while todo:
            parent = todo.pop()
            public = [c.code for c in registry.children(parent) if self.is_public(c)]
            if public:
                groups[parent] = tuple(public)
                units += public
                todo += public
        return units, groups

    async def _make(self, day: date, previous: dict[str, Any] | None) -> dict[str, Any]:
        units, groups = self._public_tree()
        figures = {u: scalars(f) for u, f in (await self.reader.figures_of(units, day)).items()}
        state = None
        if previous is not None:
            state = {u: UnitState.from_json(s) for u, s in previous["state"].items()}
        made: Release = make_release(day, figures, groups, state, self.rules)
        return {
            "date": day.isoformat(),
            "released_at": self.released_at(day).isoformat(),
            "units": made.units,
            "state": {u: s.as_json() for u, s in made.state.items()},
        }

    async def release(self, day: date) -> dict[str, Any]:
        """The stored release of ``day``, making it (and any missing before it) if due."""
        latest = self.latest_released()
        if day > latest:
            raise NotReleased(f"the figures of {day} are released at {self.released_at(day)}")
        if day in self._cache:
            return self._cache[day]
        async with self._lock:
            found = await releases.stored(self.reader.engine, day)
            if found is not None:
                return self._remember(day, found)
            first, start, previous = await self._next_to_make(latest)
            if day < first:
                raise NotReleased(f"public releases start on {first}")
            while start <= day:
                previous = await releases.store(
                    self.reader.engine, start, await self._make(start, previous)
                )
                start += timedelta(days=1)
            assert previous is not None
            return self._remember(day, previous)

    def _remember(self, day: date, release: dict[str, Any]) -> dict[str, Any]:
        self._cache[day] = release
        for old in sorted(self._cache)[:-CACHED_RELEASES]:
            del self._cache[old]
        return release

    async def _next_to_make(self, latest: date) -> tuple[date, date, dict[str, Any] | None]:
        """The first release's day, the first day without one, and the release before it.

        The first release is of the first counted day (or, with nothing
        counted, of the latest day due); earlier days have none.
        """
        engine = self.reader.engine
        first, last = await releases.span(engine)
        if first is not None and last is not None:
            return first, last + timedelta(days=1), await releases.stored(engine, last)
        counted = await releases.first_counted_day(engine)
        start = min(counted or latest, latest)
        return start, start, None

    async def summary(self, code: str, day: date | None = None) -> dict[str, Any]:
        """The unit's and its public children's released figures (latest release by default)."""
        unit = self.reader.unit(code)
        if not self.is_public(unit):
            raise NotPublic(code)
        made = await self.release(day or self.latest_released())
        if code not in made["units"]:
            # a release made before the unit was public (or registered) is kept as made
            raise NotReleased(f"the release of {made['date']} has no figures for {code}")

        def entry(shown: Unit) -> dict[str, Any]:
            described = {k: getattr(shown, k) for k in ("code", "name", "name_en")}
            return {**described, "level": shown.level.value, "figures": made["units"][shown.code]}

        children = [
            c
            for c in self.reader.registry.children(code)
            if self.is_public(c) and c.code in made["units"]
        ]
        return {
            **entry(unit),
            "date": made["date"],
            "released_at": made["released_at"],
            "threshold": self.rules.threshold,
            "children": [entry(c) for c in children],
        }
