"""Per-token rate limiting, with a controlled clock."""

from __future__ import annotations

import pytest

from zhibao_intake.domain.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=50, clock=clock)
    assert limiter.take("gate-3", 50) == 0
    wait = limiter.take("gate-3", 20)
    assert wait == pytest.approx(2.0)
    assert RateLimiter.retry_after(wait) == 2
    clock.now += 2.0
    assert limiter.take("gate-3", 20) == 0


def test_one_token_does_not_starve_another() -> None:
    limiter = RateLimiter(rate=1, burst=5, clock=Clock())
    assert limiter.take("noisy", 5) == 0
    assert limiter.take("noisy", 1) > 0
    assert limiter.take("quiet", 5) == 0


def test_refused_request_spends_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=3, clock=clock)
    assert limiter.take("t", 3) == 0
    assert limiter.take("t", 2) == pytest.approx(2.0)
    assert limiter.take("t", 2) == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.take("t", 2) == 0
