"""Per-token budget of stored bytes, so that one token cannot fill the events stream.

The events stream keeps every accepted event (a rebuild replays it) and, once full,
refuses everyone's new events. The per-second rate limit does not bound that: a
token sending new events in a loop at its rate fills the default 10 GiB in hours.
So each token may have stored a day's budget of bytes at once, refilled
continuously at a day's average: a token that spent it waits seconds for the next
request's room, not until midnight, and a device sending in a loop is held to the
average. Only what the stream stored is charged (not refusals, repeats, or events
answered unavailable), and each token has its own budget: one device cannot spend
what another reporter of the same community needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zhibao_shared.tokens import Token

DAY_S = 86_400.0


@dataclass
class _Account:
    level: float
    updated: float


class StorageBudget:
    """Bytes each key (a token id) may still have stored; ``clock`` returns monotonic
    seconds. A key's budget (``daily`` bytes) is given with each call: it follows the
    token's scope, which the caller knows."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._accounts: dict[str, _Account] = {}

    def wait(self, key: str, daily: int) -> float:
        """0 when ``key`` may store more now, else the seconds until it may.

        A request is let through while anything is left, and charged afterwards for
        what it stored: the budget is never split across a request's events.
        """
        account = self._refilled(key, daily)
        return 0.0 if account.level > 0 else (1 - account.level) / (daily / DAY_S)

    def charge(self, key: str, daily: int, stored_bytes: float) -> None:
        """Spend what a request stored (the level may go below 0: the next wait is longer)."""
        self._refilled(key, daily).level -= stored_bytes

    def _refilled(self, key: str, daily: int) -> _Account:
        now = self._clock()
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account(float(daily), now)
        account.level = min(float(daily), account.level + (now - account.updated) * daily / DAY_S)
        account.updated = now
        return account


class TokenBudgets:
    """Every token's budget: ``per_community`` bytes a day for each community its scopes
    cover (at least one), so a street's or district's system has room for all its
    communities; ``per_community`` 0 switches the budget off."""

    def __init__(
        self,
        per_community: int,
        communities_under: Callable[[str], Iterable[str]],
        clock: Callable[[], float],
    ) -> None:
        self._per_community = per_community
        self._communities_under = communities_under
        self._budget = StorageBudget(clock)
        #: a token's scopes never change: its daily bytes are counted once
        self._daily: dict[str, int] = {}

    def wait(self, token: Token) -> float:
        """0 when ``token`` may store more now, else the seconds until it may."""
        if not self._per_community:
            return 0.0
        return self._budget.wait(token.id, self._daily_of(token))

    def charge(self, token: Token, stored_bytes: float) -> None:
        """Spend what ``token`` had stored."""
        if self._per_community and stored_bytes > 0:
            self._budget.charge(token.id, self._daily_of(token), stored_bytes)

    def _daily_of(self, token: Token) -> int:
        daily = self._daily.get(token.id)
        if daily is None:
            covered = {c for scope in token.scopes for c in self._communities_under(scope)}
            daily = self._daily[token.id] = self._per_community * max(1, len(covered))
        return daily


def stored_share(body_bytes: int, items: int, stored: int) -> float:
    """The bytes charged for a request: its body's share for the events stored."""
    return body_bytes * stored / items if items else 0.0
