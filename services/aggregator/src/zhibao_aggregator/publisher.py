"""Publishing changed rollups to ``zhibao.rollups.<level>.<code>``, coalesced.

Committed batches mark (unit, day) pairs dirty; a background loop publishes
each dirty pair's current figures at most once per interval, so a busy unit
is published a few times a second at most, however many events arrive.

Under heavy load every unit is dirty at every flush, and a flush of them all
costs as much as counting many thousands of events. The loop therefore also
waits in proportion to how long its last flush took (:func:`pause_after`), so
publishing never takes more than a set share of the service's time: the
rollups are then published less often, and counting keeps its pace.

``zhibao_aggregator_rollup_wait_seconds`` observes, for each rollup published, how long
after its unit's first change since its last publication it went out: how far the
command centre's live view lags behind the committed counts. A rollup whose publish
failed (NATS away) stays due from that first change and goes out with the next flush,
rather than waiting for another change of its unit; while flushes fail, the loop waits
twice as long after each (up to :data:`MAX_RETRY_S`), so a failure that persists costs
little.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import structlog
from pydantic_core import to_json

from zhibao_aggregator.metrics import ROLLUP_WAIT, ROLLUPS_FAILED, ROLLUPS_PUBLISHED
from zhibao_aggregator.reader import RollupReader
from zhibao_shared.subjects import rollup_subject

log = structlog.get_logger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
#: A unit and a day whose rollup is due.
Pair = tuple[str, date]
#: The longest wait between flushes while they fail.
MAX_RETRY_S = 30.0


class RollupPublisher:
    """Coalesces rollup changes and publishes them from a background loop."""

    def __init__(
        self,
        reader: RollupReader,
        publish: Publish,
        interval_s: float,
        recent_days: int = 7,
        max_share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._publish = publish
        self._interval_s = interval_s
        self._max_share = max_share
        self._recent = timedelta(days=recent_days)
        self._clock = clock
        #: the pairs due, each with when it first changed since it was last published
        self._dirty: dict[Pair, float] = {}
        self._wake = asyncio.Event()
        #: the last flush left rollups unpublished (logged once, not at every retry)
        self._failing = False
        self._retry_s = interval_s

    def mark(self, changed: Iterable[Pair]) -> None:
        """Note changed (unit, day) pairs; days older than the recent window, and future
        days, are not pushed (corrections to old days are read over HTTP)."""
        now = self._clock()
        self._due({pair: now for pair in self._pushed(changed)})

    def _pushed(self, pairs: Iterable[Pair]) -> list[Pair]:
        """The pairs whose rollups are pushed: the registry's units, recent days."""
        today = self._reader.calendar.today(datetime.now(UTC))
        # future days (planned isolation ends) are not pushed either: read them over HTTP
        return [
            (u, d)
            for u, d in pairs
            if today - self._recent <= d <= today and u in self._reader.registry
        ]

    def _due(self, since: dict[Pair, float]) -> None:
        """Mark pairs due, each since its time; one already due keeps the earlier."""
        for pair, at in since.items():
            self._dirty[pair] = min(self._dirty.get(pair, at), at)
        if since:
            self._wake.set()

    async def run(self) -> None:
        """Publish dirty rollups until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = time.perf_counter()
            await self.flush()
            await asyncio.sleep(self.pause(time.perf_counter() - started))

    def pause(self, flush_s: float) -> float:
        """How long to wait after the flush just done (``flush_s`` long): see
        :func:`pause_after`; after a failed one, twice the last such wait, up to
        :data:`MAX_RETRY_S`."""
        pause = pause_after(flush_s, self._interval_s, self._max_share)
        if not self._failing:
            self._retry_s = self._interval_s
            return pause
        self._retry_s = min(2 * self._retry_s, MAX_RETRY_S)
        return max(pause, self._retry_s)

    async def flush(self) -> None:
        """Publish every dirty rollup now: one query per day for all its dirty units."""
        pending, self._dirty = self._dirty, {}
        by_day: dict[date, list[str]] = defaultdict(list)
        for code, day in sorted(pending):
            by_day[day].append(code)
        failed: list[tuple[Pair, Exception]] = []
        for day, codes in by_day.items():
            failed += [
                ((code, day), exc) for code, exc in await self._publish_day(codes, day, pending)
            ]
        self._note(failed)
        # due still, from their first change: the next flush tries again
        self._due({pair: pending[pair] for pair in self._pushed(pair for pair, _ in failed)})

    async def _publish_day(
        self, codes: list[str], day: date, since: dict[Pair, float]
    ) -> list[tuple[str, Exception]]:
        """Publish the units' rollups of ``day``; returns those a failure left unpublished,
        with it (all of them when their figures could not be read)."""
        try:
            found = await self._reader.figures_of(codes, day)
        except Exception as exc:
            return [(code, exc) for code in codes]
        failed: list[tuple[str, Exception]] = []
        for code in codes:
            try:
                level = self._reader.unit(code).level.value
                body = {
                    "unit": code,
                    "level": level,
                    "date": day.isoformat(),
                    "figures": found[code],
                }
                await self._publish(rollup_subject(level, code), to_json(body))
            except Exception as exc:  # the next unit may still go out
                failed.append((code, exc))
                continue
            ROLLUPS_PUBLISHED.labels(level).inc()
            ROLLUP_WAIT.observe(self._clock() - since[(code, day)])
        return failed

    def _note(self, failed: list[tuple[Pair, Exception]]) -> None:
        """Count a flush's failures; log when publishing starts failing and when it resumes
        (not at every retry)."""
        ROLLUPS_FAILED.inc(len(failed))
        if failed and not self._failing:
            log.warning("rollup_publish_failed", units=len(failed), error=repr(failed[0][1]))
        elif self._failing and not failed:
            log.info("rollup_publish_resumed")
        self._failing = bool(failed)


def pause_after(flush_s: float, interval_s: float, max_share: float) -> float:
    """How long to wait after a flush that took ``flush_s`` seconds: the interval, or
    longer, so that flushing takes at most ``max_share`` of the loop's time."""
    return max(interval_s, flush_s * (1 - max_share) / max_share)
