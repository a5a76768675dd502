"""Settings base classes: every value comes from a ``ZHIBAO_*`` environment variable.

Services subclass :class:`ServiceSettings`; only a service's ``bootstrap``
instantiates them (the composition root reads configuration, nothing else).
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhibao_shared.events import FEVER_THRESHOLD_C

#: Stand-ins as operators write them: a bare word (secret, password, test, example), a
#: template in angle brackets, "your-…-here", changeme / change-me / replace-me (whole
#: words: "exchange" in a passphrase is fine), a run of x's, the word "placeholder".
_STAND_IN = re.compile(
    r"^(secret|password|test|example)$|^<.*>$|your[-_ ].*[-_ ]here"
    r"|\b(change|replace)[-_ ]?(me|this)|xxxx|placeholder",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 32
#: Fewest different characters a secret has: "x" * 32 is as long as a real one.
MIN_SECRET_DISTINCT = 10
#: Default of ``ZHIBAO_CONSUMER_LINGER_S``: a tenth of the rollups' publish interval
#: (bench/RESULTS.md, 2026-12-05: single events, 0 -> 50 ms, 14-17 % more events
#: visible per second, 16 % less CPU per event; 20 ms was within the noise).
CONSUMER_LINGER_S = 0.05
#: Defaults of ``ZHIBAO_HTTP_HEADER_TIMEOUT_S`` and ``…_BODY_TIMEOUT_S``
#: (zhibao_shared.http_limits): a request head is a few hundred bytes; 30 s carries
#: intake's largest body (2 MiB) at 70 kB/s.
HTTP_HEADER_TIMEOUT_S = 10.0
HTTP_BODY_TIMEOUT_S = 30.0
#: New connections silent at once (nothing sent yet) before the oldest is closed.
HTTP_MAX_SILENT = 256
#: How long a new connection may be silent before it can be closed for crowding: a burst
#: of connections is accepted before any of their requests is read.
SILENT_MIN_AGE_S = 1.0
#: When a community's daily report is due, after the start of its day: next day 09:00.
DAILY_REPORT_DEADLINE = timedelta(days=1, hours=9)


def report_due_at(day: date, timezone: str, deadline: timedelta) -> datetime:
    """When the daily reports of ``day`` are due: ``deadline`` after its local midnight."""
    return datetime.combine(day, time(), ZoneInfo(timezone)) + deadline


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/zhibao`` (``~/.local/share/zhibao``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zhibao"


def nats_servers(url: str) -> list[str]:
    """The servers of a ``ZHIBAO_NATS_URL``: one URL or a comma-separated list.

    ``tls://u:p@nats-1:4222,tls://u:p@nats-2:4222`` names every node of a cluster,
    so a client whose node dies reconnects to another one (needed when the
    cluster does not advertise its nodes to clients).
    """
    servers = [part.strip() for part in url.split(",")]
    if not all(servers):
        raise ValueError("has an empty server entry; separate server URLs with single commas")
    return servers


def sqlite_url(data_dir: Path, name: str) -> str:
    """URL of a service's embedded SQLite database in the data directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data_dir / name}.db"


def redacted(url: str) -> str:
    """``url`` (one NATS URL or a list) safe to log: passwords replaced by ``***``."""
    return ",".join(_without_password(server) for server in url.split(","))


def _without_password(server: str) -> str:
    parts = urlsplit(server.strip())
    if parts.password is None:
        return server.strip()
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def refuse_placeholder(value: SecretStr | None) -> SecretStr | None:
    """Refuse secrets that are short, repetitive or obviously placeholders (a guessable
    pseudonym key would let anyone holding pseudonyms try resident IDs against them)."""
    if value is None:
        return None
    raw = value.get_secret_value()
    problem = _secret_problem(raw)
    if problem is not None:
        raise ValueError(
            f"{problem}; generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return value


def _secret_problem(raw: str) -> str | None:
    """Which rule a secret breaks (None: none)."""
    if _STAND_IN.search(raw.strip()):
        return "is a placeholder"
    if len(raw) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(raw)) < MIN_SECRET_DISTINCT:
        return f"is repetitive: fewer than {MIN_SECRET_DISTINCT} different characters"
    return None


class ZhibaoSettings(BaseSettings):
    """What every Zhibao process needs: where NATS is, where data lives, how to log."""

    model_config = SettingsConfigDict(env_prefix="ZHIBAO_", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL, or a comma-separated list of a cluster's nodes",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    registry_path: Path | None = Field(
        default=None, description="Hierarchy registry YAML; the shipped Jinfeng sample when unset"
    )
    places_path: Path | None = Field(
        default=None,
        description="Registered places below the community (compounds, grids, buildings; "
        "JSON lines, see zhibao registry import-places); the shipped sample when unset",
    )
    tokens_database_url: str | None = Field(
        default=None,
        description="Shared token store (PostgreSQL) for every instance; "
        "default: tokens.db in the data directory",
    )
    tokens_cache_ttl_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds between checks of the shared token store for new or revoked tokens",
    )
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when not a TTY")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    dedup_window_s: float = Field(
        default=24 * 3600.0, gt=0, description="JetStream duplicate window for Nats-Msg-Id"
    )
    events_max_bytes: int = Field(
        default=10 * 1024**3,
        gt=0,
        description="Most bytes the events stream may hold; when full, intake answers 503 "
        "(new events are refused, none stored is ever dropped)",
    )
    events_max_age_days: float = Field(
        default=0,
        ge=0,
        description="Events older than this leave the stream (0: kept for ever); a rebuild "
        "then starts from the oldest kept",
    )
    dead_letter_max_bytes: int = Field(default=1024**3, gt=0)
    dead_letter_max_age_days: float = Field(default=30, gt=0)
    tasks_max_bytes: int = Field(
        default=1024**3,
        gt=0,
        description="The task stream's size limit (the oldest task messages are dropped "
        "first); the tasks themselves are kept in the response service's database",
    )
    tasks_max_age_days: float = Field(
        default=90,
        gt=0,
        description="Task messages older than this leave the stream",
    )
    audit_max_age_days: float = Field(
        default=400.0,
        gt=0,
        description="Audit records older than this expire (the late-data horizon of events)",
    )
    audit_max_bytes: int = Field(
        default=10 * 1024**3,
        gt=0,
        description="The audit stream's size limit; when full it refuses new records (never "
        "drops old ones); the shipped Prometheus rule warns at 80%",
    )
    daily_report_deadline: timedelta = Field(
        default=DAILY_REPORT_DEADLINE,
        gt=timedelta(0),
        validation_alias=AliasChoices(
            "ZHIBAO_DAILY_REPORT_DEADLINE",
            "ZHIBAO_REPORT_DUE_AFTER",  # deprecated: the aggregator's former name
        ),
        description="A community's daily report is due this long after the start of its "
        "day (district time): the dashboard's overdue count and the alerts service's "
        "missing-report alert. ISO 8601, e.g. P1DT9H (next day 09:00, the default)",
    )

    @field_validator("nats_url")
    @classmethod
    def _servers(cls, value: str) -> str:
        nats_servers(value)
        return value

    def report_due_at(self, day: date) -> datetime:
        """When the daily reports of ``day`` are due (the one definition for every service)."""
        return report_due_at(day, self.timezone, self.daily_report_deadline)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper


class ServiceSettings(ZhibaoSettings):
    """A service with an HTTP API.

    Each service adds its own port field named after it (``intake_port`` →
    ``ZHIBAO_INTAKE_PORT``) so one environment can configure all services.
    """

    host: str = "127.0.0.1"
    shutdown_grace_s: float = Field(default=15.0, gt=0)
    http_header_timeout_s: float = Field(
        default=HTTP_HEADER_TIMEOUT_S,
        gt=0,
        description="A connection that has not sent a whole request head (request line and "
        "headers) this long after it opened, or after the previous response, is closed "
        "(408 first if part of a request had arrived)",
    )
    http_body_timeout_s: float = Field(
        default=HTTP_BODY_TIMEOUT_S,
        gt=0,
        description="A request whose body has not arrived this long after its head is "
        "answered 408 and its connection closed",
    )
    http_max_silent: int = Field(
        default=HTTP_MAX_SILENT,
        ge=1,
        description="Beyond this many new connections that have sent nothing yet, the "
        "oldest (silent a second or more) is closed: silent connections cannot crowd "
        "clients out",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="The reverse proxies (comma-separated addresses or networks, '*' for "
        "any) whose X-Forwarded-For and X-Forwarded-Proto are believed; unset: none, the "
        "peer's address is the client's (anyone could otherwise write any address into "
        "the logs and the audit trail)",
    )
    consumer_linger_s: float = Field(
        default=CONSUMER_LINGER_S,
        ge=0,
        le=1,
        description="After a batch smaller than it asked for, an events consumer waits "
        "this long before fetching again, so events arriving meanwhile share one "
        "transaction; an event waits at most this long (0: fetch again at once)",
    )
    fever_threshold_c: float = Field(
        default=FEVER_THRESHOLD_C,
        ge=35.0,
        le=42.0,
        description="A screening at or above this temperature is a fever (rollups and alerts)",
    )
