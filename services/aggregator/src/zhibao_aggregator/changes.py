"""What a committed write changed, and who hears of it.

Every writer (events, task messages, levels and points) reports the (unit, day) pairs
whose figures its commit changed, so the publisher can republish those rollups.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

Changed = Callable[[frozenset[tuple[str, date]]], None]
"""Called after a commit with the (unit, day) pairs whose figures it changed."""


def ignore_changes(_changed: frozenset[tuple[str, date]]) -> None:
    """The listener of a writer nobody reads from (the rebuild publishes nothing)."""
