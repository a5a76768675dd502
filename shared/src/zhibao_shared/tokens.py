"""Bearer tokens: scoped to community codes or prefixes, with a role, stored hashed.

Only SHA-256 digests of tokens are stored (tokens are 256-bit random, so a
fast hash suffices). Tokens may carry an expiry; an expired token is refused
like a revoked one. A token may name the person who uses it (``person``, e.g.
"王芳 (社区书记)"): a personal token, whose actions (an acknowledgement, a
silence) are recorded as that person's; a token without one is a shared,
system token.

Where they are stored:

* embedded default: a small SQLite file in the data directory. A running
  service notices changes made by ``zhibao token ...`` through SQLite's
  ``data_version`` on every request: new and revoked tokens take effect at once;
* production (``ZHIBAO_TOKENS_DATABASE_URL``): one PostgreSQL database shared
  by every instance of every service. Each instance keeps the active tokens in
  memory and re-reads them when the table changed, checking at most every
  ``cache_ttl_s`` seconds: a revocation reaches every instance within that time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from zhibao_shared.settings import ZhibaoSettings

TOKENS_FILE = "tokens.db"
TOKEN_PREFIX = "zb"  # noqa: S105 - a visible prefix, not a secret
#: Default seconds between checks of a shared (PostgreSQL) store for changes.
DEFAULT_CACHE_TTL_S = 2.0
#: Serialises schema creation when several instances start together on one PostgreSQL.
_SCHEMA_LOCK = 0x7A62_746F_6B65
#: Extra seconds before retrying a shared store that could not be reached.
_RETRY_AFTER_FAILURE_S = 10.0
log = structlog.get_logger(__name__)

_metadata = MetaData()
# Timestamps are ISO 8601 text on both backends, as the SQLite files always held them.
tokens_table = Table(
    "tokens",
    _metadata,
    Column("id", String, primary_key=True),
    Column("digest", String, nullable=False, unique=True),
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("scopes", String, nullable=False),
    Column("created_at", String, nullable=False),
    Column("revoked_at", String),
    Column("expires_at", String),
    # the person a personal token belongs to ("王芳 (社区书记)"); null: a shared token
    Column("person", String),
)
#: The longest person a token may name (a name and a role).
PERSON_MAX = 80
#: The longest token name: it is the author of level and point declarations (and of
#: audit records), whose messages and columns hold 200 characters.
NAME_MAX = 200
#: Every creation and revocation, appended in the same transaction as the change (never
#: updated or deleted): the token part of the audit trail, written whether or not the bus
#: is reachable (``zhibao token`` runs before anything else does).
token_actions = Table(
    "token_actions",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", String, nullable=False),
    Column("action", String, nullable=False),
    Column("token", String, nullable=False),
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("scopes", String, nullable=False),
)


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
    expires_at: datetime | None = None
    #: the named person who uses it ("王芳 (社区书记)"); None for a shared system token
    person: str | None = None

    def covers(self, code: str) -> bool:
        """True when ``code`` lies within one of the token's scopes (prefix match)."""
        return code.startswith(self.scopes)

    def expired(self, at: datetime) -> bool:
        """True when the token has an expiry and ``at`` is at or past it."""
        return self.expires_at is not None and at >= self.expires_at


@dataclass(frozen=True)
class TokenAction:
    """One creation or revocation of a token, as the store recorded it."""

    seq: int
    at: datetime
    action: str
    token: str
    name: str
    role: str
    scopes: tuple[str, ...]


def _action_row(action: str, token: Token, at: datetime) -> dict[str, str]:
    return {
        "at": at.isoformat(),
        "action": action,
        "token": token.id,
        "name": token.name,
        "role": token.role.value,
        "scopes": ",".join(token.scopes),
    }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row_to_token(row: Any) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        scopes=tuple(row.scopes.split(",")),
        created_at=datetime.fromisoformat(row.created_at),
        revoked_at=_when(row.revoked_at),
        expires_at=_when(row.expires_at),
        person=row.person,
    )


def _one_line(text: str, field: str, limit: int, meaning: str) -> str:
    """``text`` with its whitespace collapsed to single spaces; ValueError naming the token's
    ``field`` when it is longer than ``limit`` or not printable."""
    text = " ".join(text.split())
    if len(text) > limit:
        raise ValueError(f"a token's {field} is at most {limit} characters")
    if not text.isprintable():
        raise ValueError(f"a token's {field} must be printable text ({meaning})")
    return text


def token_name(name: str) -> str:
    """A token's name, trimmed to one line; ValueError when it is too long or not text."""
    return _one_line(name, "name", NAME_MAX, "who or what uses it")


def personal_name(person: str | None) -> str | None:
    """A token's person, trimmed (None when blank); ValueError when it is not a name.

    One line of at most ``PERSON_MAX`` characters: it is shown in alert timelines and
    audit records.
    """
    if person is None or not person.strip():
        return None
    return _one_line(person, "person", PERSON_MAX, "a name and a role")


def store_url(url: str) -> str:
    """The synchronous SQLAlchemy URL of a token database.

    The services' PostgreSQL URLs name the asyncpg driver; the token store is
    synchronous (it answers from memory inside request handlers), so any
    ``postgresql`` URL is served through psycopg.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    raise ValueError(f"tokens database must be PostgreSQL or SQLite, not {parsed.drivername}")


def _engine(url: str) -> Engine:
    sync_url = store_url(url)
    if make_url(sync_url).get_backend_name() == "sqlite":
        # One connection: SQLite's data_version is per connection.
        engine = create_engine(
            sync_url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA busy_timeout=10000")
        return engine
    # A short connect timeout: a refresh runs inside request handlers.
    return create_engine(
        sync_url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": 2},
    )


class TokenStore:
    """Create, list, revoke and authenticate tokens kept in SQLite or PostgreSQL."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._setup(_engine(f"sqlite:///{path}"), DEFAULT_CACHE_TTL_S)

    @classmethod
    def from_url(cls, url: str, cache_ttl_s: float = DEFAULT_CACHE_TTL_S) -> TokenStore:
        """A store in the database at ``url`` (``postgresql://…`` for a shared one)."""
        store = cls.__new__(cls)
        store._setup(_engine(url), cache_ttl_s)
        return store

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TokenStore:
        """The embedded store (``<data_dir>/tokens.db``), shared by every local service."""
        return cls(data_dir / TOKENS_FILE)

    @classmethod
    def configured(cls, settings: ZhibaoSettings) -> TokenStore:
        """The deployment's store: ``ZHIBAO_TOKENS_DATABASE_URL``, else the data directory's."""
        if settings.tokens_database_url:
            return cls.from_url(settings.tokens_database_url, settings.tokens_cache_ttl_s)
        return cls.in_data_dir(settings.data_dir)

    def _setup(self, engine: Engine, cache_ttl_s: float) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._ttl_s = cache_ttl_s
        self._lock = threading.Lock()
        self._version: object = None
        self._checked_at = float("-inf")
        self._by_digest: dict[str, Token] = {}
        self._by_id: dict[str, Token] = {}
        if self._sqlite:  # StaticPool: the one connection every statement uses
            self._raw: Any = engine.raw_connection().driver_connection
        self._create_schema()

    def _create_schema(self) -> None:
        with self._engine.begin() as conn:
            if not self._sqlite:
                conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            _metadata.create_all(conn)
            # Stores made before tokens could expire, or name a person, lack the columns:
            # they are upgraded in place (both backends add a nullable column).
            columns = {c["name"] for c in inspect(conn).get_columns("tokens")}
            for column in ("expires_at", "person"):
                if column not in columns:
                    conn.execute(text(f"ALTER TABLE tokens ADD COLUMN {column} TEXT"))

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def create(
        self,
        *,
        scopes: Iterable[str],
        role: Role,
        name: str = "",
        expires_at: datetime | None = None,
        person: str | None = None,
    ) -> tuple[Token, str]:
        """Make a token; returns its record and the secret (shown once, never stored).

        ``person`` makes it a personal token (see :func:`personal_name`).
        """
        scope_list = tuple(sorted({s.strip() for s in scopes if s.strip()}))
        if not scope_list or not all(s.isdigit() for s in scope_list):
            raise ValueError("a token needs at least one scope: a unit code or code prefix")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("a token's expiry needs a time zone")
        person = personal_name(person)
        name = token_name(name)
        token_id = secrets.token_hex(4)
        secret = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        expiry = expires_at.astimezone(UTC) if expires_at else None
        now = datetime.now(UTC)
        token = Token(token_id, name or token_id, role, scope_list, now, None, expiry, person)
        with self._lock, self._engine.begin() as conn:
            conn.execute(
                tokens_table.insert().values(
                    id=token.id,
                    digest=_digest(secret),
                    name=token.name,
                    role=role.value,
                    scopes=",".join(scope_list),
                    created_at=token.created_at.isoformat(),
                    expires_at=expiry.isoformat() if expiry else None,
                    person=person,
                )
            )
            conn.execute(token_actions.insert().values(_action_row("token.created", token, now)))
            self._version = None
        return token, secret

    def list(self) -> list[Token]:
        """All tokens, revoked and expired ones included, oldest first."""
        with self._lock, self._engine.connect() as conn:
            rows = conn.execute(select(tokens_table).order_by(tokens_table.c.created_at))
            return [_row_to_token(r) for r in rows]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by id; False when no active token has that id."""
        now = datetime.now(UTC)
        with self._lock, self._engine.begin() as conn:
            result = conn.execute(
                update(tokens_table)
                .where(tokens_table.c.id == token_id, tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=now.isoformat())
            )
            if result.rowcount == 1:
                row = conn.execute(select(tokens_table).where(tokens_table.c.id == token_id)).one()
                conn.execute(
                    token_actions.insert().values(
                        _action_row("token.revoked", _row_to_token(row), now)
                    )
                )
            self._version = None
        return result.rowcount == 1

    def actions(self, after: int = 0, limit: int = 1000) -> tuple[TokenAction, ...]:
        """Recorded creations and revocations with a sequence number above ``after``."""
        query = (
            select(token_actions)
            .where(token_actions.c.seq > after)
            .order_by(token_actions.c.seq)
            .limit(limit)
        )
        with self._lock, self._engine.connect() as conn:
            return tuple(
                TokenAction(
                    r.seq,
                    datetime.fromisoformat(r.at),
                    r.action,
                    r.token,
                    r.name,
                    r.role,
                    tuple(r.scopes.split(",")),
                )
                for r in conn.execute(query)
            )

    def authenticate(self, secret: str) -> Token | None:
        """The active (not revoked, not expired) token with this secret, or None."""
        self._refresh()
        token = self._by_digest.get(_digest(secret))
        return None if token is None or token.expired(datetime.now(UTC)) else token

    def still_active(self, token_id: str) -> bool:
        """True while the token with this id is neither revoked nor expired.

        For long-lived connections (the live stream) authenticated once at the start.
        """
        self._refresh()
        token = self._by_id.get(token_id)
        return token is not None and not token.expired(datetime.now(UTC))

    def _refresh(self) -> None:
        if self._sqlite:
            if self._sqlite_version() == self._version:
                return
        elif time.monotonic() - self._checked_at < self._ttl_s:
            return
        try:
            self._reload_if_changed()
        except SQLAlchemyError as exc:
            # Keep answering from the last snapshot: no revocation can be written
            # while the database is unreachable either, and expiry is checked here.
            self._checked_at = time.monotonic() + _RETRY_AFTER_FAILURE_S
            log.warning("token_store_unreachable", error=type(exc).__name__)

    def _reload_if_changed(self) -> None:
        with self._lock, self._engine.connect() as conn:
            version = self._current_version(conn)
            self._checked_at = time.monotonic()
            if version == self._version:
                return
            rows = conn.execute(select(tokens_table).where(tokens_table.c.revoked_at.is_(None)))
            by_digest = {r.digest: _row_to_token(r) for r in rows}
            self._by_digest = by_digest
            self._by_id = {t.id: t for t in by_digest.values()}
            self._version = version

    def _sqlite_version(self) -> object:
        # data_version changes only when another connection committed a change, so
        # this is one cheap pragma per request in the steady state (on the DB-API
        # connection itself: SQLAlchemy's wrapping cost more than the pragma).
        with self._lock:
            return self._raw.execute("PRAGMA data_version").fetchone()[0]

    def _current_version(self, conn: Any) -> object:
        if self._sqlite:
            return conn.exec_driver_sql("PRAGMA data_version").scalar()
        # Rows are never deleted: a create adds one, a revocation fills one revoked_at.
        summary = select(func.count(), func.count(tokens_table.c.revoked_at))
        return tuple(conn.execute(summary).one())


def bearer_secret(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
