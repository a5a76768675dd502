"""Bearer tokens: scoped to community codes or prefixes, with a role, stored hashed.

The store is a small SQLite file in the data directory. Only SHA-256 digests
of tokens are stored (tokens are 256-bit random, so a fast hash suffices).
A running service notices changes made by ``zhibao token ...`` through
SQLite's ``data_version``: new and revoked tokens take effect without a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

TOKENS_FILE = "tokens.db"
TOKEN_PREFIX = "zb"  # noqa: S105 - a visible prefix, not a secret

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""


class Role(StrEnum):
    """What a token may do: post events, read rollups, or operate (read + act)."""

    REPORT = "report"
    READ = "read"
    OPERATE = "operate"

    def permits(self, needed: Role) -> bool:
        """True when a token with this role may do what ``needed`` requires."""
        return self is needed or (self is Role.OPERATE and needed is Role.READ)


@dataclass(frozen=True)
class Token:
    """A token's record (never its secret)."""

    id: str
    name: str
    role: Role
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    def covers(self, code: str) -> bool:
        """True when ``code`` lies within one of the token's scopes (prefix match)."""
        return any(code.startswith(scope) for scope in self.scopes)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_to_token(row: sqlite3.Row) -> Token:
    return Token(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        scopes=tuple(row["scopes"].split(",")),
        created_at=datetime.fromisoformat(row["created_at"]),
        revoked_at=datetime.fromisoformat(row["revoked_at"]) if row["revoked_at"] else None,
    )


class TokenStore:
    """Create, list, revoke and authenticate tokens kept in a SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._version = -1
        self._by_digest: dict[str, Token] = {}

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TokenStore:
        """The deployment's token store (``<data_dir>/tokens.db``), shared by every service."""
        return cls(data_dir / TOKENS_FILE)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def create(self, *, scopes: Iterable[str], role: Role, name: str = "") -> tuple[Token, str]:
        """Make a token; returns its record and the secret (shown once, never stored)."""
        scope_list = tuple(sorted({s.strip() for s in scopes if s.strip()}))
        if not scope_list or not all(s.isdigit() for s in scope_list):
            raise ValueError("a token needs at least one scope: a unit code or code prefix")
        token_id = secrets.token_hex(4)
        secret = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        token = Token(token_id, name or token_id, role, scope_list, datetime.now(UTC))
        self._db.execute(
            "INSERT INTO tokens (id, digest, name, role, scopes, created_at) VALUES (?,?,?,?,?,?)",
            (
                token.id,
                _digest(secret),
                token.name,
                role.value,
                ",".join(scope_list),
                token.created_at.isoformat(),
            ),
        )
        self._version = -1
        return token, secret

    def list(self) -> list[Token]:
        """All tokens, revoked ones included, oldest first."""
        rows = self._db.execute("SELECT * FROM tokens ORDER BY created_at").fetchall()
        return [_row_to_token(r) for r in rows]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by id; False when no active token has that id."""
        cursor = self._db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (datetime.now(UTC).isoformat(), token_id),
        )
        self._version = -1
        return cursor.rowcount == 1

    def authenticate(self, secret: str) -> Token | None:
        """The active token with this secret, or None."""
        self._refresh()
        return self._by_digest.get(_digest(secret))

    def _refresh(self) -> None:
        # data_version changes only when another connection committed a change,
        # so this is one cheap pragma per request in the steady state.
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        rows = self._db.execute("SELECT * FROM tokens WHERE revoked_at IS NULL").fetchall()
        self._by_digest = {r["digest"]: _row_to_token(r) for r in rows}
        self._version = version


def bearer_secret(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
