"""Keyed pseudonyms: one person, one stable identifier, no way back without the key.

Intake pseudonymises the people events name; the response service pseudonymises
the people its tasks name with the same key, so a task's person and the same
person's events carry one pseudonym on the bus.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from zhibao_shared.events import LocalRefPerson, Pseudonym, ReportedPerson, ResidentIdPerson

#: The generated key's file in the data directory (shared by the services that pseudonymise).
KEY_FILE = "pseudonym.key"


class Pseudonymiser:
    """Replaces reported person identifiers by HMAC-SHA256 pseudonyms.

    A resident ID maps to the same pseudonym whichever community reports it;
    a local reference is only unique within its community, so the community
    code is part of what is hashed.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the pseudonym key must be at least 32 bytes")
        self._key = key

    def _pid(self, material: str) -> Pseudonym:
        digest = hmac.new(self._key, material.encode(), hashlib.sha256).hexdigest()
        return Pseudonym(pid=digest[:32])

    def fingerprint(self, material: str) -> str:
        """A keyed digest of ``material`` (hex; HMAC-SHA256): equal for equal material,
        and not to be guessed back from, e.g. a phone number, without the key."""
        return hmac.new(self._key, f"fingerprint:{material}".encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, person: ReportedPerson, community: str) -> Pseudonym:
        """The pseudonym of a reported person."""
        if isinstance(person, ResidentIdPerson):
            return self._pid(f"cn-resident-id:{person.id_number}")
        assert isinstance(person, LocalRefPerson)
        return self._pid(f"local-ref:{community}:{person.ref}")


def owner_only_secret(path: Path) -> str:
    """The secret kept in ``path``, generated there once (mode 0600) when missing.

    Created exclusively: of two processes creating it at once, one writes and the
    other reads what was written.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def pseudonym_key(configured: SecretStr | None, data_dir: Path) -> bytes:
    """The configured key (``ZHIBAO_PSEUDONYM_KEY``), or the one generated into the data dir."""
    if configured is not None:
        return configured.get_secret_value().encode()
    return owner_only_secret(data_dir / KEY_FILE).encode()
