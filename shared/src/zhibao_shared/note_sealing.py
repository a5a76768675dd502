"""A task result's note, sealed by intake for the response service.

A note may name people (a neighbour, a relative), so it must not travel on the
bus in the clear. Intake and the response service already share one secret,
the pseudonym key (``ZHIBAO_PSEUDONYM_KEY``); a separate key is derived from it
for notes (so the pseudonym's HMAC key is never used as a cipher key), and the
note is AES-256-GCM sealed with the task's id as associated data, so a sealed
note copied onto another task's result does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_PURPOSE = b"zhibao task-result note v1"


class NoteSealer:
    """Seals and opens task-result notes with a key derived from the pseudonym key."""

    def __init__(self, pseudonym_key: bytes) -> None:
        self._aead = AESGCM(hmac.new(pseudonym_key, _PURPOSE, hashlib.sha256).digest())

    def seal(self, task: str, note: str) -> str:
        """The note encrypted for ``task``, as unpadded base64url text."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, note.encode(), task.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, task: str, sealed: str) -> str | None:
        """The note sealed for ``task``; None when it does not open (another key or task)."""
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], task.encode())
        except (InvalidTag, ValueError):
            return None
        return plain.decode()
