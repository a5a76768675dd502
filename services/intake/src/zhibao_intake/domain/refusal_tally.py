"""Refusals of whole requests, counted per time window.

Anyone who can reach intake can be refused, as often as they like, and so can a
token past its own limits (its rate limit, its storage budget: refusals cost it
nothing): recording each of those refusals would let them grow the audit trail
without bound, until it refuses every service's records. They are counted instead,
per window and per channel, address, status, reason and token, and each window
becomes one audit record per key carrying the count. Pure: the caller supplies the
clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zhibao_shared.tokens import Token

#: Addresses beyond this many in one window are counted together under OTHERS; callers
#: with a token and callers without one each have this many, so that a flood of requests
#: without a token from many addresses cannot hide where a (leaked) token was used from.
MAX_KEYS = 1000
OTHERS = "(other addresses)"


@dataclass(frozen=True)
class RefusalKey:
    """What a tally counts by."""

    channel: str
    remote: str | None
    status: int
    reason: str
    #: the token refused (None: the caller had no valid one)
    token: Token | None = None


@dataclass(frozen=True)
class ClosedWindow:
    """The counts of one finished window: ``[start, start + length)`` in epoch seconds."""

    start: float
    length: float
    counts: dict[RefusalKey, int]


@dataclass
class RefusalTally:
    """Counts refusals in consecutive windows of ``window_s`` seconds (aligned to the epoch)."""

    window_s: float
    max_keys: int = MAX_KEYS
    _window: int | None = None
    _counts: dict[RefusalKey, int] = field(default_factory=dict)
    #: the open window's keys, by whether they name a token
    _keys: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    def add(self, key: RefusalKey, now: float) -> ClosedWindow | None:
        """Count one refusal at ``now``; the previous window's counts if this one closed it."""
        closed = self.close(now)
        if self._window is None:
            self._window = int(now // self.window_s)
        if key not in self._counts:
            with_token = key.token is not None
            if self._keys[with_token] >= self.max_keys:
                key = RefusalKey(key.channel, OTHERS, key.status, key.reason, key.token)
            if key not in self._counts:
                self._keys[with_token] += 1
        self._counts[key] = self._counts.get(key, 0) + 1
        return closed

    def close(self, now: float | None) -> ClosedWindow | None:
        """The counts of the open window if it has ended by ``now`` (None: end it anyway)."""
        if self._window is None:
            return None
        if now is not None and int(now // self.window_s) == self._window:
            return None
        closed = ClosedWindow(self._window * self.window_s, self.window_s, self._counts)
        self._window, self._counts, self._keys = None, {}, {True: 0, False: 0}
        return closed
