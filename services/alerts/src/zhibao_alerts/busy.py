"""A locked SQLite database answers 503 with Retry-After, never 500.

SQLite lets one writer in at a time. The API's writes (acknowledge, resolve, create or
expire a silence) wait a short busy timeout per attempt and are retried with backoff
for a bounded time; a database still locked after that is reported as temporarily
unavailable, so the client knows to try again rather than seeing a server error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

#: How long one attempt waits for the lock (the engine's busy timeout), in ms.
ATTEMPT_WAIT_MS = 250
RETRY_AFTER_S = 2


class DatabaseBusy(Exception):
    """The database stayed locked for the whole retry budget."""


def is_locked(exc: BaseException) -> bool:
    """True for SQLite's 'database is locked' / 'database table is locked' / busy errors."""
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


def short_busy_timeout(engine: AsyncEngine, wait_ms: int = ATTEMPT_WAIT_MS) -> AsyncEngine:
    """Make the engine's SQLite connections wait at most ``wait_ms`` for a lock
    (the retries here do the rest of the waiting, without holding a request for long)."""

    def pragma(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", pragma)
    return engine


async def retrying(work: Callable[[], Awaitable[T]], budget_s: float) -> T:
    """Run ``work`` again, with exponential backoff, while the database is locked;
    raises :class:`DatabaseBusy` when it still is after ``budget_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    pause = 0.05
    while True:
        try:
            return await work()
        except OperationalError as exc:
            if not is_locked(exc):
                raise
            if loop.time() + pause > deadline:
                raise DatabaseBusy from exc
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


async def busy_response(_request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After for a locked database (a last resort for reads too)."""
    if isinstance(exc, OperationalError) and not is_locked(exc):
        raise exc
    return JSONResponse(
        {"detail": "the database is busy; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
