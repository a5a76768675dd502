"""Imperfect delivery: duplicates and out-of-order arrival, as real networks and retries cause."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def deliver(
    events: Iterable[T],
    *,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    reorder_window: int = 1,
) -> Iterator[T]:
    """The events with some sent twice and locally shuffled (deterministic per ``seed``).

    Each event is delivered once, plus a second time with probability
    ``duplicate_rate`` (a later resend of the same ``source`` + ``id``); an
    event can overtake up to ``reorder_window - 1`` events before it. Anything
    that is not an event (a response-loop step) is passed on in place: no event
    overtakes it and it overtakes none.
    """
    rng = random.Random(seed)
    window: list[T] = []
    for event in events:
        if not isinstance(event, dict):
            while window:
                yield window.pop(rng.randrange(len(window)))
            yield event
            continue
        window.append(event)
        if rng.random() < duplicate_rate:
            window.append(copy.copy(event))
        while len(window) >= max(1, reorder_window):
            yield window.pop(rng.randrange(len(window)))
    while window:
        yield window.pop(rng.randrange(len(window)))
