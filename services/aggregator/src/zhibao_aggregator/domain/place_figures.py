"""Figures per registered place below a community (compound, building, grid): pure.

An event counts at its registered places as it counts at its community: a screening's
own metrics (``PLACE_FLOWS``) at each of its ``building_id``, ``compound_id`` and
``grid_id``; a person's case history (new and current classifications) in the places of
their latest report, one dimension (compound, building, grid) at a time. An event that
names a place by labels matching no registered one counts ``unregistered`` for its
community. Place changes travel in the writer's contribution under marked keys
(:func:`place_key`) and are split off (:func:`split`) before the community changes are
rolled up the hierarchy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from zhibao_aggregator.domain import contributions as c
from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_shared.events import Classification, PublishedCaseData, PublishedScreeningData

#: Marks a contribution key as a place (place ids and community codes never start with it).
_MARK = "@"
#: In a footprint's places: the event named a place that is not registered.
UNREGISTERED_MARK = "?"
#: Events of a community that named a place by labels matching no registered place.
UNREGISTERED = "unregistered"
#: A footprint's metrics that are also counted at the event's registered places.
PLACE_FLOWS: frozenset[str] = frozenset(
    (m.EVENTS, m.SCREENINGS, m.FEVERS, m.TRAVEL_FLAGGED, *m.SITE_METRICS.values())
)
#: The flows a place's figures show (the day's value), in order.
FLOW_FIGURES: tuple[str, ...] = (
    m.EVENTS,
    m.SCREENINGS,
    m.FEVERS,
    m.TRAVEL_FLAGGED,
    *m.SITE_METRICS.values(),
    *(m.new_metric(cls) for cls in Classification),
)
#: The stocks a place's figures show (the running sum up to the day).
STOCK_FIGURES: tuple[str, ...] = tuple(m.current_metric(cls) for cls in m.CURRENT_CLASSES)
#: Metrics read as running sums: the stocks and the flows behind cumulative figures.
SUMMED: tuple[str, ...] = (*STOCK_FIGURES, *m.CUMULATIVE_OF.values())

PlaceData = PublishedScreeningData | PublishedCaseData


def place_key(place: str) -> str:
    """The contribution key of a place (or, for ``unregistered``, of a community)."""
    return _MARK + place


def event_places(data: object) -> tuple[str, ...]:
    """Where an event's data counts besides its community: its registered building,
    compound and grid ids; :data:`UNREGISTERED_MARK` when it names a place by labels and
    none of them matched a registered place; nothing for other events."""
    if not isinstance(data, PublishedScreeningData | PublishedCaseData):
        return ()
    ids = tuple(p for p in (data.building_id, data.compound_id, data.grid_id) if p is not None)
    grid_label = data.grid if isinstance(data, PublishedScreeningData) else None
    named = data.compound is not None or data.building is not None or grid_label is not None
    return ids if ids or not named else (UNREGISTERED_MARK,)


def placed(
    community: str, day: date, metrics: Iterable[str], places: Iterable[str], sign: int = 1
) -> c.Contribution:
    """What an event counting ``metrics`` on ``day`` adds at its ``places`` (``sign`` -1:
    takes away): its place flows at each place, or one ``unregistered`` for the
    community. Nothing once retracted (no metrics)."""
    counted = list(metrics)
    out: c.Contribution = Counter()
    if not counted:
        return out
    for place in places:
        if place == UNREGISTERED_MARK:
            out[(place_key(community), day, UNREGISTERED)] += sign
            continue
        for metric in counted:
            if metric in PLACE_FLOWS:
                out[(place_key(place), day, metric)] += sign
    return out


@dataclass(frozen=True)
class CasePlaces:
    """One case report of a person with the registered places it was matched to."""

    time: datetime
    key: str
    classification: Classification
    compound: str | None
    building: str | None
    grid: str | None


_NOWHERE = ""


def case_places_history(facts: Iterable[CasePlaces], calendar: Calendar) -> c.Contribution:
    """A person's case counters per registered place: ``new_<class>`` where the person
    first got the class, ``current_<class>`` in the place of their latest report (a
    report at no registered place of a dimension takes them out of that dimension)."""
    listed = list(facts)
    out: c.Contribution = Counter()
    for dimension in ("compound", "building", "grid"):
        keyed = [
            c.CaseFact(f.time, f.key, _where(getattr(f, dimension)), f.classification)
            for f in listed
        ]
        for (where, day, metric), delta in c.case_history(keyed, calendar).items():
            if where != _NOWHERE and delta:
                out[(where, day, metric)] += delta
    return out


def case_places_of(time: datetime, key: str, data: PublishedCaseData) -> CasePlaces:
    """A case report's data as a report at its registered places."""
    return CasePlaces(
        time, key, data.classification, data.compound_id, data.building_id, data.grid_id
    )


def case_places_change(
    old: list[CasePlaces], new: list[CasePlaces], calendar: Calendar
) -> c.Contribution:
    """What changing a person's reports from ``old`` to ``new`` changes at their places
    (nothing to compute when none of them was at a registered place)."""
    if not any(f.compound or f.building or f.grid for f in old + new):
        return Counter()
    return c.difference(case_places_history(new, calendar), case_places_history(old, calendar))


def _where(place: str | None) -> str:
    return _NOWHERE if place is None else place_key(place)


def split(change: c.Contribution) -> tuple[c.Contribution, Counter[tuple[str, date, str]]]:
    """The community changes (to roll up) and the place changes (place id, or community
    for ``unregistered``, without the mark; zero changes dropped)."""
    communities: c.Contribution = Counter()
    places: Counter[tuple[str, date, str]] = Counter()
    for (where, day, metric), delta in change.items():
        if where.startswith(_MARK):
            if delta:
                places[(where[len(_MARK) :], day, metric)] += delta
        else:
            communities[(where, day, metric)] += delta
    return communities, Counter({k: v for k, v in places.items() if v != 0})


def figures(flows: dict[str, int], sums: dict[str, int]) -> dict[str, int]:
    """A place's figures for a day from its day's flows and its running sums."""
    out = {name: flows.get(name, 0) for name in FLOW_FIGURES}
    for name in STOCK_FIGURES:
        out[name] = sums.get(name, 0)
    for name, flow in m.CUMULATIVE_OF.items():
        out[name] = sums.get(flow, 0)
    return out
