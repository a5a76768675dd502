"""Publishing changed rollups to ``zhibao.rollups.<level>.<code>``, coalesced.

Committed batches mark (unit, day) pairs dirty; a background loop publishes
each dirty pair's current figures at most once per interval, so a busy unit
is published a few times a second at most, however many events arrive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import structlog

from zhibao_aggregator.metrics import ROLLUPS_PUBLISHED
from zhibao_aggregator.reader import RollupReader
from zhibao_shared.subjects import rollup_subject

log = structlog.get_logger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


class RollupPublisher:
    """Coalesces rollup changes and publishes them from a background loop."""

    def __init__(
        self, reader: RollupReader, publish: Publish, interval_s: float, recent_days: int = 7
    ) -> None:
        self._reader = reader
        self._publish = publish
        self._interval_s = interval_s
        self._recent = timedelta(days=recent_days)
        self._dirty: set[tuple[str, date]] = set()
        self._wake = asyncio.Event()

    def mark(self, changed: Iterable[tuple[str, date]]) -> None:
        """Note changed (unit, day) pairs; days older than the recent window are not pushed
        (corrections to old days are read over HTTP)."""
        today = self._reader.calendar.today(datetime.now(UTC))
        fresh = {
            (u, d) for u, d in changed if d >= today - self._recent and u in self._reader.registry
        }
        if fresh:
            self._dirty |= fresh
            self._wake.set()

    async def run(self) -> None:
        """Publish dirty rollups until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self._interval_s)

    async def flush(self) -> None:
        """Publish every dirty rollup now."""
        pending, self._dirty = self._dirty, set()
        for code, day in sorted(pending):
            try:
                await self._publish_one(code, day)
            except Exception as exc:  # a failed publish must not stop the loop
                log.warning("rollup_publish_failed", unit=code, error=repr(exc))

    async def _publish_one(self, code: str, day: date) -> None:
        unit = self._reader.unit(code)
        body = {
            "unit": code,
            "level": unit.level.value,
            "date": day.isoformat(),
            "figures": await self._reader.figures(code, day),
        }
        await self._publish(rollup_subject(unit.level.value, code), json.dumps(body).encode())
        ROLLUPS_PUBLISHED.labels(unit.level.value).inc()
