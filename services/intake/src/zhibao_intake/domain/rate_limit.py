"""Per-token rate limiting: a token bucket counted in events, not requests.

One misbehaving gate device must not starve a district: each token may
submit ``rate`` events per second on average, in bursts of up to ``burst``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    level: float
    updated: float


class RateLimiter:
    """Token buckets keyed by token id; ``clock`` returns monotonic seconds."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: int) -> float:
        """Spend ``cost`` events for ``key``; 0 when allowed, else seconds to wait.

        A refused request spends nothing, so a client that waits the answered
        time and retries gets through.
        """
        now = self._clock()
        bucket = self._buckets.get(key) or _Bucket(float(self._burst), now)
        bucket.level = min(self._burst, bucket.level + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[key] = bucket
        if cost <= bucket.level:
            bucket.level -= cost
            return 0.0
        return (min(cost, self._burst) - bucket.level) / self._rate

    @staticmethod
    def retry_after(wait_s: float) -> int:
        """Whole seconds for a Retry-After header (at least 1)."""
        return max(1, math.ceil(wait_s))
