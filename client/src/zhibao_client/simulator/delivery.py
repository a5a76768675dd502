"""Imperfect delivery: duplicates and out-of-order arrival, as real networks and retries cause."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any


def deliver(
    events: Iterable[dict[str, Any]],
    *,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    reorder_window: int = 1,
) -> Iterator[dict[str, Any]]:
    """The events with some sent twice and locally shuffled (deterministic per ``seed``).

    Each event is delivered once, plus a second time with probability
    ``duplicate_rate`` (a later resend of the same ``source`` + ``id``); an
    event can overtake up to ``reorder_window - 1`` events before it.
    """
    rng = random.Random(seed)
    window: list[dict[str, Any]] = []
    for event in events:
        window.append(event)
        if rng.random() < duplicate_rate:
            window.append(dict(event))
        while len(window) >= max(1, reorder_window):
            yield window.pop(rng.randrange(len(window)))
    while window:
        yield window.pop(rng.randrange(len(window)))
