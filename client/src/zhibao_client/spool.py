"""A durable local queue of events not yet answered for by intake (SQLite, WAL, fsync).

An event is written (and fsync'd: ``synchronous=FULL``) before :meth:`Spool.add`
returns, and deleted only by :meth:`Spool.remove`, which the client calls once
intake answered accepted, duplicate or rejected for it. Events keep the order
in which they were handed over.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    added_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


def event_key(event: Any) -> str:
    """The CloudEvents identity (source + id), the same key intake de-duplicates on.

    Something without a string ``source`` and ``id`` (intake will reject it) is
    keyed by its content, so two different malformed items never collapse.
    """
    if isinstance(event, dict):
        source, event_id = event.get("source"), event.get("id")
        if isinstance(source, str) and isinstance(event_id, str):
            return f"{source} {event_id}"
    body = json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)
    return "content:" + hashlib.sha256(body.encode()).hexdigest()


class Spool:
    """Events wait here until intake answered accepted, duplicate or rejected."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Events wait here with residents' ID numbers in the clear (intake pseudonymises
        # them): the file is the user's alone, and SQLite gives its -wal and -shm files
        # the database file's mode. Created so before SQLite opens it (the umask is the
        # process's, and other threads' files must not follow a change of it).
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        for one in (path, *_companions(path)):  # a spool made before, as it was made
            if one.exists():
                one.chmod(0o600)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # on disk before add() returns
        self._db.executescript(_SCHEMA)

    def add(self, events: list[Any]) -> int:
        """Store events durably; an event already spooled (same key) is kept once.

        Returns how many were new to the spool.
        """
        rows = [(event_key(e), json.dumps(e, ensure_ascii=False), time.time()) for e in events]
        before = len(self)
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (key, body, added_at) VALUES (?, ?, ?)", rows
            )
        return len(self) - before

    def oldest(self, limit: int) -> list[Any]:
        """The next events to send, in the order they were handed over."""
        rows = self._db.execute("SELECT body FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def remove(self, keys: list[str]) -> None:
        """Forget events intake has answered for."""
        with self._db:
            self._db.executemany("DELETE FROM spool WHERE key = ?", [(k,) for k in keys])

    def attempted(self, keys: list[str]) -> None:
        """Count a failed attempt for these events."""
        with self._db:
            self._db.executemany(
                "UPDATE spool SET attempts = attempts + 1 WHERE key = ?", [(k,) for k in keys]
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _companions(path: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and shared-memory files beside ``path``."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
