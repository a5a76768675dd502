"""Personal details encrypted at rest (AES-256-GCM), bound to their task.

Each task's details are one sealed value: a random 96-bit nonce followed by the
ciphertext, with the task's id as associated data, so a sealed value copied onto
another task does not open.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class Sealer:
    """Seals and opens tasks' personal details with one key."""

    def __init__(self, secret: str) -> None:
        # the secret is at least 32 characters of high entropy: a digest makes it a key
        self._aead = AESGCM(hashlib.sha256(secret.encode()).digest())

    def seal(self, task_id: str, details: dict[str, Any]) -> bytes:
        """The encrypted form of ``details`` for ``task_id``."""
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(details, ensure_ascii=False, separators=(",", ":")).encode()
        return nonce + self._aead.encrypt(nonce, plain, task_id.encode())

    def open(self, task_id: str, sealed: bytes) -> dict[str, Any] | None:
        """The details sealed for ``task_id``; None when they do not open with this key."""
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], task_id.encode()
            )
        except InvalidTag:
            return None
        details: dict[str, Any] = json.loads(plain)
        return details
