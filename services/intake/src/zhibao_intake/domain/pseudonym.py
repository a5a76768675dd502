"""Keyed pseudonyms: one person, one stable identifier, no way back without the key."""

from __future__ import annotations

import hashlib
import hmac

from zhibao_shared.events import LocalRefPerson, Pseudonym, ReportedPerson, ResidentIdPerson


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

    def pseudonym(self, person: ReportedPerson, community: str) -> Pseudonym:
        """The pseudonym of a reported person."""
        if isinstance(person, ResidentIdPerson):
            return self._pid(f"cn-resident-id:{person.id_number}")
        assert isinstance(person, LocalRefPerson)
        return self._pid(f"local-ref:{community}:{person.ref}")
