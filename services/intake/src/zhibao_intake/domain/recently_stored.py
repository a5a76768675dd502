"""The identities of events this intake process saw JetStream store; the oldest are forgotten.

Pure: no I/O. A bundle's ``Nats-Msg-Id`` covers the bundle, not its events, so
JetStream cannot tell intake that one event of a new bundle was stored before.
This memory can: an identity is added only after the message holding the event
was acknowledged, so a hit is always a true "duplicate", and the event is not
published again. A miss (another intake instance, a restart, an identity
forgotten) publishes it again; the consumers de-duplicate every event, so it is
still counted once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class RecentlyStored:
    """A bounded set of event identities (``source id``) that forgets the oldest first.

    A set for lookups and a queue for the order: forgetting costs O(1) an
    identity. (Deleting a dict's oldest keys does not: each deletion leaves a
    dummy at the front that the next scan from the front steps over until the
    dict is resized, so at capacity intake slowed to a crawl.)
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._known: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, identity: object) -> bool:
        return identity in self._known

    def __len__(self) -> int:
        return len(self._known)

    def add(self, identities: Iterable[str]) -> None:
        """Remember ``identities`` as stored, forgetting the oldest beyond the capacity."""
        if self._capacity == 0:
            return
        known, order = self._known, self._order
        for identity in identities:
            if identity not in known:
                known.add(identity)
                order.append(identity)
                if len(order) > self._capacity:
                    known.discard(order.popleft())
