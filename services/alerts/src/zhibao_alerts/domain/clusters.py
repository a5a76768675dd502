"""Fever clusters in event time: which windows an arriving fever completes (pure).

A cluster is ``min_fevers`` persons with a fever at one place within
``window_hours``. Every window that could hold an arriving fever is judged,
whatever order the fevers arrive in: a window is anchored at each fever and
spans the window length after it (any set of fevers within the window length
fits in the one anchored at its earliest). Windows that share a fever are one
cluster, so overlapping windows of the same fevers raise one alert.

Persons: screenings that name a person (the pseudonym on the bus) count that
person once; a screening that names nobody counts as one person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from zhibao_shared.events import PublishedScreening


def place_of(event: PublishedScreening) -> str | None:
    """The compound/building a screening happened at, if it says: the registered
    building (else compound) intake matched it to, so that "3号楼" and "3栋" of one
    building are one place; the labels as reported when no registered place fits."""
    data = event.data
    registered = data.building_id or data.compound_id
    if registered:
        return registered
    if data.building:
        return f"{data.compound or '-'}/{data.building}"
    return data.compound


@dataclass(frozen=True)
class Fever:
    """A fever at a place: its event's dedup key, time, person and, once it was counted
    in a cluster alert, that alert's day."""

    key: str
    at: datetime
    person: str | None
    cluster_day: date | None


@dataclass(frozen=True)
class Cluster:
    """Fevers of one place in windows that reach the cluster size and share fevers."""

    fevers: tuple[Fever, ...]
    #: persons in the fullest window of the cluster (what the alert says)
    persons: int

    def alert_day(self, zone: tzinfo, min_persons: int) -> date:
        """The day (window) of its alert: that of the alert its fevers were counted in
        already — a late fever joins it, not a second alert for the same fevers — unless
        the fevers not counted yet make a cluster on their own; then the local day of
        the first of them (a new cluster, as the next day's in a building still ill)."""
        counted = [f.cluster_day for f in self.fevers if f.cluster_day is not None]
        fresh = [f for f in self.fevers if f.cluster_day is None]
        if counted and persons(fresh) < min_persons:
            return min(counted)
        return fresh[0].at.astimezone(zone).date()


def persons(fevers: Sequence[Fever]) -> int:
    """Distinct persons among fevers (a screening without a person counts as one)."""
    named = {f.person for f in fevers if f.person is not None}
    return len(named) + sum(1 for f in fevers if f.person is None)


def clusters(
    fevers: Sequence[Fever], new: set[str], window: timedelta, min_persons: int
) -> list[Cluster]:
    """The clusters among a place's ``fevers`` (in time order) that hold a ``new`` fever."""
    found: list[tuple[int, int, int]] = []  # (first index, end index, persons)
    end = 0
    for start, anchor in enumerate(fevers):
        end = max(end, start)
        while end < len(fevers) and fevers[end].at <= anchor.at + window:
            end += 1
        members = fevers[start:end]
        if not any(f.key in new for f in members):
            continue
        count = persons(members)
        if count >= min_persons:
            found.append((start, end, count))
    merged: list[tuple[int, int, int]] = []
    for start, stop, count in found:
        if merged and start < merged[-1][1]:
            first, last, most = merged[-1]
            merged[-1] = (first, max(last, stop), max(most, count))
        else:
            merged.append((start, stop, count))
    return [Cluster(tuple(fevers[a:b]), count) for a, b, count in merged]
