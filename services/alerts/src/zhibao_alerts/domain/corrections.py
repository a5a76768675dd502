"""Corrections of events as the alerts service judges them (pure).

A correction (``zhibao.correction.v1``) retracts an earlier event or replaces its
``data``; a replacement keeps the event's identity, subject and time. Several
corrections of one event apply in the order of their (rank, time, identity) and the
last decides (a case report's correction from a higher level over any from below,
otherwise the latest), so applying them is independent of the order they arrive in: a
correction that sorts before the one that decided already changes nothing. A correction naming
another type than its event's is ignored.

What an event contributes to the alerts is summed up in its :class:`Facts`: a
correction whose event's facts stay the same (a fever of 38.5 °C replaced by one of
38.9 °C) changes nothing but the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from zhibao_alerts.domain import triggers
from zhibao_alerts.domain.clusters import place_of
from zhibao_alerts.domain.config import Rules
from zhibao_shared.events import (
    PUBLISHED_EVENT,
    STORED,
    CorrectionAction,
    PublishedCorrection,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
    correction_rank,
    may_correct,
)

#: The (time, identity) of a correction.
Order = tuple[datetime, str]
#: The (rank, time, identity) of a correction among its event's: the greatest decides
#: (the rank of :func:`~zhibao_shared.events.correction_rank`).
Precedence = tuple[int, datetime, str]


@dataclass(frozen=True)
class Decision:
    """What one correction decides about its event."""

    #: the correction's own identity
    key: str
    #: the corrected event's identity
    corrects: str
    at: datetime
    action: str
    #: the corrected event's type, when the correction names it
    type: str | None
    #: the replacement data (JSON form) of a replace
    data: dict[str, Any] | None
    reason: str
    reporter: str
    receivedat: datetime
    #: the correction's reporter level (``reporterlevel``; None: not stamped)
    level: str | None = None

    @property
    def order(self) -> Order:
        """Its (time, identity): the order corrections of several events were made in."""
        return (self.at, self.key)

    def precedence(self, event_type: str) -> Precedence:
        """Its place among the corrections of its event, of ``event_type``."""
        return (correction_rank(event_type, self.level), self.at, self.key)

    @property
    def retracts(self) -> bool:
        """True for a retraction: the event counts as absent."""
        return self.action == CorrectionAction.RETRACT.value

    def refusal(self, event_type: str, event_level: str | None) -> str | None:
        """Why it may not change an event of ``event_type`` reported at ``event_level``
        (it is then ignored): ``type_mismatch`` (it names another type) or
        ``below_reporter`` (:func:`~zhibao_shared.events.may_correct`); None: it may."""
        if self.type is not None and self.type != event_type:
            return "type_mismatch"
        if not may_correct(event_type, event_level, self.level):
            return "below_reporter"
        return None


def decision_of(correction: PublishedCorrection) -> Decision:
    """The decision a correction on the bus carries."""
    data = correction.data
    replacement = getattr(data, "data", None)
    return Decision(
        key=correction.dedup_key,
        corrects=correction.corrected_key,
        at=correction.time,
        action=data.action.value,
        type=data.type.value if data.type is not None else None,
        data=replacement.model_dump(mode="json", exclude_none=True) if replacement else None,
        reason=data.reason,
        reporter=correction.reporter,
        receivedat=correction.receivedat,
        level=correction.reporterlevel,
    )


def deciding(
    decisions: Iterable[Decision], event: Recorded, decided: Precedence | None
) -> tuple[Decision | None, list[tuple[Decision, str]]]:
    """The decision that now decides ``event`` whose last decision was ``decided`` (None:
    none of ``decisions`` comes after it), and the decisions ignored, each with why
    (:meth:`Decision.refusal`)."""
    fitting: list[Decision] = []
    ignored: list[tuple[Decision, str]] = []
    for one in decisions:
        why = one.refusal(event.type, event.level)
        if why is None:
            fitting.append(one)
        else:
            ignored.append((one, why))
    last = max(fitting, key=lambda d: d.precedence(event.type), default=None)
    if last is None or (decided is not None and last.precedence(event.type) <= decided):
        return None, ignored
    return last, ignored


@dataclass(frozen=True)
class Recorded:
    """An applied event as it counts now (its record)."""

    key: str
    type: str
    community: str
    at: datetime
    #: its data as last decided; None when it counts towards nothing
    data: dict[str, Any] | None
    #: its reporter's level (corrections apply from it up; None: not stamped)
    level: str | None = None


def rebuild(
    record: Recorded, data: dict[str, Any], reporter: str, receivedat: datetime
) -> PublishedEvent:
    """The event of ``record`` with ``data`` (identity, subject and time kept)."""
    _community, source, event_id = record.key.split(" ", 2)
    return PUBLISHED_EVENT.validate_python(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": record.type,
            "subject": record.community,
            "time": record.at,
            "data": data,
            "reporter": reporter,
            "receivedat": receivedat,
        },
        context=STORED,
    )


def as_counted(record: Recorded) -> PublishedEvent | None:
    """The event of a record as it counts now (None: it counts towards nothing)."""
    if record.data is None:
        return None
    return rebuild(record, record.data, "-", record.at)


@dataclass(frozen=True)
class Facts:
    """What an event contributes to the alerts service's state."""

    community: str
    #: the local day of its time
    day: date
    pid: str | None = None
    #: the daily series it counts in (fevers, suspected)
    metric: str | None = None
    #: where a fever was (a cluster's place)
    place: str | None = None
    #: the dedup key of the immediate alert it raises
    trigger: str | None = None
    #: an isolation's action (the person's isolation follows it)
    isolation: str | None = None
    #: the day a daily report closes
    report_day: date | None = None

    @property
    def counts(self) -> bool:
        """True when it contributes anything."""
        return any(
            v is not None
            for v in (self.metric, self.place, self.trigger, self.isolation, self.report_day)
        )


@dataclass(frozen=True)
class Judge:
    """Judges events as the handler does: the service's zone, threshold and rules."""

    zone: ZoneInfo
    fever_threshold_c: float
    rules: Rules

    def day(self, event: PublishedEvent) -> date:
        """The local day an event counts on (a daily report: the day it closes)."""
        if isinstance(event, PublishedDailyReport):
            return event.data.date
        return event.time.astimezone(self.zone).date()

    def counts_nothing(self, event: PublishedEvent) -> bool:
        """True when :meth:`facts` of ``event`` would not count (a screening below the
        fever threshold), told without working them out: most events are such."""
        return (
            isinstance(event, PublishedScreening)
            and event.data.temperature_c < self.fever_threshold_c
        )

    def facts(self, event: PublishedEvent | None, community: str, day: date) -> Facts:
        """What ``event`` contributes (nothing when None: absent, or retracted)."""
        if event is None:
            return Facts(community, day)
        local = event.time.astimezone(self.zone).date()
        metric = triggers.counted_metric(event, self.fever_threshold_c)
        trigger = triggers.immediate(event, self.rules, local)
        person = getattr(event.data, "person", None)
        return Facts(
            community=event.subject,
            day=local,
            pid=person.pid if person is not None else None,
            metric=metric,
            place=place_of(event)
            if metric == "fevers" and isinstance(event, PublishedScreening)
            else None,
            trigger=trigger.dedup_key if trigger is not None else None,
            isolation=event.data.action.value if isinstance(event, PublishedIsolation) else None,
            report_day=event.data.date if isinstance(event, PublishedDailyReport) else None,
        )


@dataclass(frozen=True)
class Change:
    """A correction that changes what its event contributes."""

    record: Recorded
    decision: Decision
    before: PublishedEvent | None
    after: PublishedEvent | None
    was: Facts
    now: Facts


def series_keys(facts: Facts, lengths: Sequence[int]) -> list[tuple[str, str, date]]:
    """The (unit, metric, day) series an event counts in, at each level's code length."""
    if facts.metric is None:
        return []
    return [(facts.community[:n], facts.metric, facts.day) for n in lengths]


def withdrawn_detail(decision: Decision) -> str:
    """A timeline entry's detail: the evidence withdrawn, by whom and why."""
    what = "retracted" if decision.retracts else "replaced"
    return f"its evidence was {what} by a correction: {decision.reason}"


def corrected_detail(decision: Decision, summary_en: str) -> str:
    """A timeline entry's detail: the evidence changed, the alert holds with new figures."""
    what = "retracted" if decision.retracts else "replaced"
    return f"some of its evidence was {what} ({decision.reason}); now: {summary_en}"
