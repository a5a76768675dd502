"""The bus passwords of an embedded deployment (``zhibao up``), kept in the data directory.

Generated on first run, one per user of :mod:`zhibao_shared.bus_access`, in
``<data dir>/nats/credentials.json``, readable by the owner only (the folder too).
``zhibao bus-url`` reads the operator's from there.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from zhibao_shared.bus_access import ALL_USERS
from zhibao_shared.private_files import private_dir, write_private

CREDENTIALS_FILE = "credentials.json"


def bus_dir(data_dir: Path) -> Path:
    """The folder holding the embedded nats-server's configuration and credentials."""
    return data_dir / "nats"


@dataclass(frozen=True)
class BusCredentials:
    """Each bus user's password."""

    passwords: dict[str, str]

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> BusCredentials:
        """The credentials kept in ``data_dir``, generated (and kept) on first use."""
        path = private_dir(bus_dir(data_dir)) / CREDENTIALS_FILE
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
        missing = [user for user in ALL_USERS if user not in stored]
        if missing:
            stored |= {user: secrets.token_urlsafe(32) for user in missing}
            write_private(path, json.dumps(stored, indent=2) + "\n")
        return cls(stored)

    @classmethod
    def existing(cls, data_dir: Path) -> BusCredentials:
        """The credentials of a data directory that ``zhibao up`` has already run on."""
        path = bus_dir(data_dir) / CREDENTIALS_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: run `zhibao up` once with this ZHIBAO_DATA_DIR"
            )
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def url(self, user: str, address: str) -> str:
        """``address`` (a NATS URL or a comma-separated list) with ``user``'s credentials."""
        secret = quote(self.passwords[user], safe="")
        return ",".join(
            _with_userinfo(server.strip(), user, secret) for server in address.split(",")
        )


def _with_userinfo(server: str, user: str, secret: str) -> str:
    parts = urlsplit(server)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))
