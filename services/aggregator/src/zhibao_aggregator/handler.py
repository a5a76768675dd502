"""The consumer's batch handler: apply a batch in one transaction, then announce changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_aggregator.changes import Changed
from zhibao_aggregator.metrics import COMMIT_SECONDS, DUPLICATES_SKIPPED, EVENTS_APPLIED
from zhibao_aggregator.storage.writer import (
    Applied,
    HeldCounters,
    Rules,
    add_rows,
    apply_batch,
    prepare,
)
from zhibao_shared.bulk import day_binder
from zhibao_shared.consumer import Delivery
from zhibao_shared.direct import DirectTransactions

log = structlog.get_logger(__name__)

T = TypeVar("T")


class ApplyBatch:
    """Applies each batch in one transaction; returns only after the commit."""

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Rules,
        on_committed: Changed,
        held: HeldCounters | None = None,
    ) -> None:
        self._engine = engine
        self._transactions = DirectTransactions(engine)
        self._rules = rules
        self._on_committed = on_committed
        self._held = held

    async def write_held(self) -> None:
        """Write the counter changes held so far (a rebuild, at its end): a transaction
        a run of them, each run's rows built before its transaction (on SQLite, while
        a rebuild's other process holds the write lock). A failure leaves some runs
        written: the rebuild is unfinished then, and is run again with ``--force``."""
        if self._held is None:
            return
        for rows in self._held.rows(day_binder(self._engine)):
            await self._transactions.run(partial(add_rows, rows=rows))
        self._held.forget()

    def close(self) -> None:
        """Close the handler's own (direct SQLite) connections."""
        self._transactions.dispose()

    async def _settled(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction; held changes follow its outcome. (A
        cancelled call settles nothing: its transaction may still commit, and a
        rebuild that was cancelled is not finished, so it is run again.)"""
        try:
            result = await self._transactions.run(work)
        except Exception:
            if self._held is not None:
                self._held.settle(committed=False)
            raise
        if self._held is not None:
            self._held.settle(committed=True)
        return result

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        """Apply and commit ``batch`` (raises, so the consumer naks, if anything fails)."""
        started = time.perf_counter()
        # before the transaction, off the event loop (it serves reads meanwhile)
        ready = await asyncio.to_thread(prepare, batch, self._rules)
        result: Applied = await self._settled(
            lambda conn: apply_batch(conn, batch, self._rules, self._held, ready)
        )
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        for kind, count in result.by_type.items():
            EVENTS_APPLIED.labels(kind).inc(count)
        DUPLICATES_SKIPPED.inc(result.duplicates)
        log.debug(
            "batch_applied",
            size=len(batch),
            applied=result.applied,
            duplicates=result.duplicates,
        )
        self._on_committed(result.changed)
