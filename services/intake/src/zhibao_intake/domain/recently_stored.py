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

from collections.abc import Iterable
from itertools import islice


class RecentlyStored:
    """A bounded, insertion-ordered set of event identities (``source id``)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._identities: dict[str, None] = {}

    def __contains__(self, identity: object) -> bool:
        return identity in self._identities

    def __len__(self) -> int:
        return len(self._identities)

    def add(self, identities: Iterable[str]) -> None:
        """Remember ``identities`` as stored, forgetting the oldest beyond the capacity."""
        if self._capacity == 0:
            return
        remembered = self._identities
        for identity in identities:
            remembered[identity] = None
        excess = len(remembered) - self._capacity
        if excess > 0:
            for oldest in list(islice(remembered, excess)):
                del remembered[oldest]
