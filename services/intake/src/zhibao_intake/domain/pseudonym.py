"""Keyed pseudonyms: the mechanism lives in :mod:`zhibao_shared.pseudonym` (the response
service pseudonymises its tasks' people with the same key)."""

from __future__ import annotations

from zhibao_shared.pseudonym import Pseudonymiser

__all__ = ["Pseudonymiser"]
