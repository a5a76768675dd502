"""Per-token budget of stored bytes, so that one token cannot fill the events stream
nor the audit trail.

The events stream keeps every accepted event (a rebuild replays it) and, once full,
refuses everyone's new events; the audit trail keeps a line for every event submitted
(repeats and rejected ones too) and, once full, refuses every service's records. The
per-second rate limit does not bound either: a token sending new events in a loop at
its rate fills the default 10 GiB events stream in hours, one resending the same batch
fills the audit trail in a day or two. So each token may have stored a day's budget of
bytes at once, refilled continuously at a day's average: a token that spent it waits
seconds to minutes for the next request's room, not until midnight, and a device
sending in a loop is held to the average. What is charged is what the two streams kept
for the token's requests (not refusals, which the trail counts per window, nor a request
intake could not publish), and each token has its own budget: one device cannot spend
what another reporter of the same community needs. No token's budget exceeds a 30th of
the smaller stream a day, whatever its scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zhibao_shared.tokens import Token

DAY_S = 86_400.0
#: No token may store more than this share of the events stream a day: alone, it would
#: need a month to fill it (the stream alerts warn at 80 %).
MOST_OF_STREAM_A_DAY = 1 / 30
#: What the stream keeps for an event besides its JSON: its message's subject and
#: ``Nats-Msg-Id`` header (a lone event's; a bundle shares them between its events).
MESSAGE_OVERHEAD_BYTES = 128


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

        A request is let through while anything is left (the budget is never split
        across a request's events), and charged for it.
        """
        account = self._refilled(key, daily)
        return 0.0 if account.level > 0 else (1 - account.level) / (daily / DAY_S)

    def charge(self, key: str, daily: int, nbytes: float) -> None:
        """Spend ``nbytes`` (negative: give them back); the level may go below 0, and the
        next wait is then longer."""
        account = self._refilled(key, daily)
        account.level = min(float(daily), account.level - nbytes)

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
    cover (at least one), so a street's system has room for its communities, but at
    most :data:`MOST_OF_STREAM_A_DAY` of ``stream_bytes`` (the smaller of the events
    stream and the audit trail: a district's or city's system at full volume needs
    larger ones); ``per_community`` 0 switches the budget off.

    A request is checked (:meth:`wait`), then holds its body's size while it is
    published (:meth:`hold`), then is settled for what the streams kept (:meth:`settle`).
    """

    def __init__(
        self,
        per_community: int,
        stream_bytes: int,
        communities_under: Callable[[str], Iterable[str]],
        clock: Callable[[], float],
    ) -> None:
        self._per_community = per_community
        self._most = max(1, int(stream_bytes * MOST_OF_STREAM_A_DAY))
        self._communities_under = communities_under
        self._budget = StorageBudget(clock)
        #: a token's scopes never change: its daily bytes are counted once
        self._daily: dict[str, int] = {}

    def wait(self, token: Token) -> float:
        """0 when ``token`` may store more now, else the seconds until it may."""
        if not self._per_community:
            return 0.0
        return self._budget.wait(token.id, self.daily(token))

    def hold(self, token: Token, nbytes: int) -> int:
        """Spend ``nbytes`` for a request under way; returns what was held."""
        if not self._per_community:
            return 0
        self._budget.charge(token.id, self.daily(token), nbytes)
        return nbytes

    def settle(self, token: Token, held: int, stored_bytes: int) -> None:
        """Spend what the streams kept for the request instead of what it held."""
        if self._per_community and held != stored_bytes:
            self._budget.charge(token.id, self.daily(token), stored_bytes - held)

    def daily(self, token: Token) -> int:
        """``token``'s bytes a day."""
        daily = self._daily.get(token.id)
        if daily is None:
            covered = {c for scope in token.scopes for c in self._communities_under(scope)}
            wanted = self._per_community * max(1, len(covered))
            daily = self._daily[token.id] = min(wanted, self._most)
        return daily


def stored_size(payload_bytes: int) -> int:
    """What the stream keeps for one event of ``payload_bytes`` of JSON."""
    return payload_bytes + MESSAGE_OVERHEAD_BYTES
