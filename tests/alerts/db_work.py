"""How much work a SQLite engine does: statements sent and virtual-machine steps run.

SQLite calls a progress handler every ``STEP`` instructions of its bytecode engine, so
the count measures the database's work (rows scanned, index pages read) without
looking at a clock.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

STEP = 100


@dataclass
class Work:
    """Counters since the last :meth:`reset`."""

    statements: int = 0
    steps: int = 0

    def reset(self) -> None:
        """Start counting again."""
        self.statements = self.steps = 0


def measure(engine: AsyncEngine) -> Work:
    """Count the statements and SQLite steps of ``engine``'s connections (made from now on:
    call before the engine connects, or dispose it first)."""
    work = Work()

    def step() -> int:
        work.steps += 1
        return 0  # go on

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):  # a copy on a direct engine
            dbapi_connection.set_progress_handler(step, STEP)  # (zhibao_shared.direct)
            return
        aiosqlite = dbapi_connection._connection  # the handler runs on its own thread

        def install() -> None:
            aiosqlite._conn.set_progress_handler(step, STEP)

        await_only(aiosqlite._execute(install))

    def on_statement(*_args: Any) -> None:
        work.statements += 1

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    return work
