"""A durable local queue of events not yet accepted by intake (SQLite, WAL, fsync)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    added_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


def event_key(event: dict[str, Any]) -> str:
    """The CloudEvents identity (source + id), the same key intake de-duplicates on."""
    return f"{event.get('source')} {event.get('id')}"


class Spool:
    """Events wait here until intake answered accepted, duplicate or rejected."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # on disk before add() returns
        self._db.executescript(_SCHEMA)

    def add(self, events: list[dict[str, Any]]) -> None:
        """Store events durably (an event already spooled is kept once)."""
        rows = [(event_key(e), json.dumps(e, ensure_ascii=False), time.time()) for e in events]
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (key, body, added_at) VALUES (?, ?, ?)", rows
            )

    def oldest(self, limit: int) -> list[dict[str, Any]]:
        """The next events to send, oldest first."""
        rows = self._db.execute(
            "SELECT body FROM spool ORDER BY added_at, key LIMIT ?", (limit,)
        ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def remove(self, keys: list[str]) -> None:
        """Forget events intake has answered for."""
        with self._db:
            self._db.executemany("DELETE FROM spool WHERE key = ?", [(k,) for k in keys])

    def attempted(self, keys: list[str]) -> None:
        """Count a failed attempt."""
        with self._db:
            self._db.executemany(
                "UPDATE spool SET attempts = attempts + 1 WHERE key = ?", [(k,) for k in keys]
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
