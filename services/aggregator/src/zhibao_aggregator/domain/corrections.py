"""Corrections (``zhibao.correction.v1``): what an applied event counts by itself, and
which of an event's corrections decides. Pure: no I/O.

An applied event keeps a :class:`Footprint` with its dedup key: its type, time, receipt,
day, the metrics it adds by itself (``events``, ``screenings``, ``fevers``...) and the
person (pseudonym) or reported day its facts are filed under. A correction turns the
footprint into the corrected one (retract: no metrics; replace: the metrics of the new
data), so the counters change by exactly the difference. Several corrections of one
event decide in the order of :func:`order_key` — the last one wins: a case report's
correction from a higher level over any from below, otherwise the latest — so the
result does not depend on the order they arrive in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from zhibao_aggregator.domain import metrics as m
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.place_figures import event_places
from zhibao_aggregator.domain.quality import lag_metrics
from zhibao_shared.events import (
    CORRECTABLE_TYPES,
    DailyReportData,
    EventType,
    PublishedCase,
    PublishedCaseData,
    PublishedCorrection,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
    PublishedScreeningData,
    PublishedTaskResult,
    Retraction,
    correction_rank,
    may_correct,
    rank_kept,
    ranked,
)

#: (community code, day, metric) → change (as in ``contributions``).
Contribution = Counter[tuple[str, date, str]]

_SEP = "|"
_CORRECTABLE_SHORT = frozenset(t.short for t in CORRECTABLE_TYPES)
#: An event type's full name by its short one (as a footprint keeps it).
_TYPES = {t.short: t.value for t in EventType}


@dataclass(frozen=True)
class Footprint:
    """What an applied event counts by itself, stored with its dedup key."""

    type: str  #: the event type's short name
    time: datetime
    received_at: datetime
    day: date  #: the local day of ``time`` (where its metrics are counted)
    metrics: tuple[str, ...]  #: each counted +1 on ``day``; empty once retracted
    ref: str = ""  #: the person's pid (cases, isolations) or the reported date
    #: Where the metrics also count below the community (``place_figures.event_places``).
    places: tuple[str, ...] = ()
    #: The reporter's level (``reporterlevel``; "" when not stamped): corrections from it up.
    level: str = ""

    @property
    def full_type(self) -> str:
        """The event type's full name (``zhibao.case.v1``)."""
        return _TYPES[self.type]

    @property
    def correctable(self) -> bool:
        """True for the types a correction may change (not task results, not corrections)."""
        return self.type in _CORRECTABLE_SHORT

    def encode(self) -> str:
        """The stored text (``applied_events.effect``)."""
        return _SEP.join(
            (
                self.type,
                self.time.astimezone(UTC).isoformat(),
                self.received_at.astimezone(UTC).isoformat(),
                self.day.isoformat(),
                ",".join(self.metrics),
                self.ref,
                ",".join(self.places),
                self.level,
            )
        )

    @classmethod
    def decode(cls, text: str) -> Footprint:
        """The footprint stored as ``text`` by :meth:`encode`."""
        kind, time, received, day, metrics, ref, *rest = text.split(_SEP)
        places = rest[0] if rest else ""  # footprints stored before places: none
        level = rest[1] if len(rest) > 1 else ""  # and before reporters' levels
        return cls(
            kind,
            datetime.fromisoformat(time),
            datetime.fromisoformat(received),
            date.fromisoformat(day),
            tuple(metrics.split(",")) if metrics else (),
            ref,
            tuple(places.split(",")) if places else (),
            level,
        )


def screening_metrics(data: PublishedScreeningData, fever_c: float) -> list[str]:
    """What a screening's data counts: a screening, its site, a fever, a travel flag."""
    out = [m.SCREENINGS, m.SITE_METRICS[data.site]]
    if data.temperature_c >= fever_c:
        out.append(m.FEVERS)
    if data.travel_from_risk_area:
        out.append(m.TRAVEL_FLAGGED)
    return out


def _ref(event: PublishedEvent) -> str:
    if isinstance(event, PublishedCase | PublishedIsolation | PublishedTaskResult):
        person = event.data.person
        return person.pid if person is not None else ""
    if isinstance(event, PublishedDailyReport):
        return event.data.date.isoformat()
    return ""


def footprint(
    event: PublishedEvent, calendar: Calendar, fever_c: float, case_limit: timedelta
) -> Footprint:
    """What ``event`` counts by itself: an event on its day, late when received on a later
    local day, a screening's own metrics (see :func:`screening_metrics`) and a case
    report's lag figures (:func:`~zhibao_aggregator.domain.quality.lag_metrics`)."""
    day = calendar.day(event.time)
    counted = [m.EVENTS]
    if calendar.day(event.receivedat) > day:
        counted.append(m.LATE_EVENTS)
    if isinstance(event, PublishedScreening):
        counted += screening_metrics(event.data, fever_c)
    if isinstance(event, PublishedCase):
        counted += lag_metrics(event.data.classification, event.time, event.receivedat, case_limit)
    return Footprint(
        event.type.short,
        event.time,
        event.receivedat,
        day,
        tuple(counted),
        _ref(event),
        event_places(event.data),
        event.reporterlevel or "",
    )


def counted(community: str, prints: Iterable[Footprint], sign: int = 1) -> Contribution:
    """The counters ``prints`` of one community's events add (``sign`` -1: take away)."""
    out: Contribution = Counter()
    for one in prints:
        for metric in one.metrics:
            out[(community, one.day, metric)] += sign
    return out


def timed_key(correction: PublishedCorrection) -> str:
    """A correction's (time, own identity) as sortable text: the event's ``corrected_by``,
    as versions before ranks kept it too."""
    moment = correction.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{moment} {correction.dedup_key}"


def order_key(correction: PublishedCorrection, event_type: str) -> str:
    """A correction's place among the corrections of its event (of ``event_type``, the
    full type name), as sortable text: (rank, time, own identity), the rank that of
    :func:`~zhibao_shared.events.correction_rank`. Stored as the event's ``ranked_by``."""
    return ranked(correction_rank(event_type, correction.reporterlevel), timed_key(correction))


def decided_key(corrected_by: str | None, ranked_by: str | None) -> str | None:
    """The order key of the correction that decided an event, as stored: its rank as
    ``ranked_by`` keeps it for ``corrected_by`` (0 when it keeps none for it:
    :func:`~zhibao_shared.events.rank_kept`); None when none decided it."""
    if corrected_by is None:
        return None
    return ranked(rank_kept(ranked_by, corrected_by), corrected_by)


def refusal(original: Footprint, correction: PublishedCorrection) -> str | None:
    """Why ``correction`` may not change ``original`` (None: it may): ``not_correctable``
    (a type no correction changes), ``type_mismatch`` (it names another type; a retraction
    may name none) or ``below_reporter`` (reported below the original's level:
    :func:`~zhibao_shared.events.may_correct`)."""
    named = correction.data.type
    if not original.correctable:
        return "not_correctable"
    if named is not None and EventType(named).short != original.type:
        return "type_mismatch"
    if not may_correct(original.full_type, original.level or None, correction.reporterlevel):
        return "below_reporter"
    return None


def fits(original: Footprint, correction: PublishedCorrection) -> bool:
    """Whether ``correction`` may change ``original`` (:func:`refusal` finds no reason)."""
    return refusal(original, correction) is None


@dataclass(frozen=True)
class Decision:
    """What an event's newly seen corrections do."""

    #: Corrections that apply (counted under ``corrections``).
    applied: int
    #: Corrections that do not fit the event (wrong type, not correctable): ignored.
    ignored: tuple[PublishedCorrection, ...]
    #: The correction that decides the event now, if a new one sorts after the last.
    decider: PublishedCorrection | None


def decide(
    original: Footprint, decided: str | None, corrections: Sequence[PublishedCorrection]
) -> Decision:
    """Which of ``corrections`` (new ones of one event) apply and which decides now: the
    one of the greatest :func:`order_key`, if it sorts after ``decided`` (the key of the
    correction that decided the event so far: :func:`decided_key`)."""
    fitting = [one for one in corrections if fits(original, one)]
    ignored = tuple(one for one in corrections if not fits(original, one))
    keyed = {order_key(one, original.full_type): one for one in fitting}
    last = max(keyed, default=None)
    if last is None or (decided is not None and last <= decided):
        return Decision(len(fitting), ignored, None)
    return Decision(len(fitting), ignored, keyed[last])


def corrected(
    original: Footprint,
    correction: PublishedCorrection,
    calendar: Calendar,
    fever_c: float,
    case_limit: timedelta,
) -> Footprint:
    """The footprint after ``correction``: no metrics for a retraction; for a
    replacement, the event's own metrics counted with the new data."""
    data = correction.data
    if isinstance(data, Retraction):
        return replace(original, metrics=())
    counted = [m.EVENTS]
    if calendar.day(original.received_at) > original.day:
        counted.append(m.LATE_EVENTS)
    new = data.data
    if isinstance(new, PublishedScreeningData):
        counted += screening_metrics(new, fever_c)
    if isinstance(new, PublishedCaseData):
        time, received = original.time, original.received_at
        counted += lag_metrics(new.classification, time, received, case_limit)
    if isinstance(new, DailyReportData):
        ref = new.date.isoformat()
    else:
        person = getattr(new, "person", None)
        ref = person.pid if person is not None else ""
    return replace(original, metrics=tuple(counted), ref=ref, places=event_places(new))
