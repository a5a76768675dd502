"""What raises an alert: triggers derived from events and counts (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from zhibao_alerts.domain.config import Rules, Severity
from zhibao_alerts.domain.ears import EarsPoint, Series, last_day
from zhibao_shared.events import (
    Classification,
    PublishedCase,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
)

_CLASS_ZH = {
    "confirmed": "确诊病例",
    "asymptomatic": "无症状感染者",
    "deceased": "死亡病例",
    "breach": "隔离违规（离开隔离点）",
}
_CLASS_EN = {
    "confirmed": "confirmed case",
    "asymptomatic": "asymptomatic infection",
    "deceased": "death",
    "breach": "isolation breach",
}


#: How much of a person's pseudonym a case alert's window shows (enough to tell
#: persons apart, no more).
PID_SHOWN = 8


@dataclass(frozen=True)
class Trigger:
    """A condition that holds: rule, unit and window form the alert's dedup key."""

    rule: str
    unit: str
    window: str
    severity: Severity
    summary_zh: str
    summary_en: str
    day: date
    #: False: the alert is recorded, nobody is paged and it does not escalate
    pages: bool = True
    #: the registered grid of the place it is about (its worker is paged first), if any
    grid: str | None = None

    @property
    def dedup_key(self) -> str:
        """Stable identity: the same condition in the same window is one alert."""
        return f"{self.rule}:{self.unit}:{self.window}"


def immediate(event: PublishedEvent, rules: Rules, day: date) -> Trigger | None:
    """A new confirmed/asymptomatic case, a death or an isolation breach.

    A case is one alert per person (its window names the day and the person's
    pseudonym, shortened): a second person the same day is a new page. A breach
    is one alert per community and day.
    """
    window = day.isoformat()
    if isinstance(event, PublishedCase):
        kind = event.data.classification.value
        window = f"{window}:{event.data.person.pid[:PID_SHOWN]}"
    elif isinstance(event, PublishedIsolation):
        kind = event.data.action.value
    else:
        return None
    severity = rules.immediate.get(kind)
    if severity is None:
        return None
    return Trigger(
        rule=f"immediate_{kind}",
        unit=event.subject,
        window=window,
        severity=severity,
        summary_zh=f"社区 {event.subject} 报告{_CLASS_ZH.get(kind, kind)}",
        summary_en=f"{_CLASS_EN.get(kind, kind).capitalize()} reported in {event.subject}",
        day=day,
    )


def counted_metric(event: PublishedEvent, fever_threshold_c: float) -> str | None:
    """The daily series (EARS) an event counts in: a fever, a suspected case, or none."""
    if isinstance(event, PublishedScreening):
        return "fevers" if event.data.temperature_c >= fever_threshold_c else None
    if isinstance(event, PublishedCase):
        suspected = event.data.classification is Classification.SUSPECTED
        return "suspected" if suspected else None
    return None


def ears_rule(method: str, metric: str) -> str:
    """The rule of an EARS method's alarms on a metric (``ears_c1_fevers``)."""
    return f"ears_{method.lower()}_{metric}"


def cluster(
    community: str,
    place: str,
    fevers: int,
    rules: Rules,
    day: date,
    *,
    name: str | None = None,
    grid: str | None = None,
) -> Trigger:
    """``fevers`` persons in one compound/building within the window (the cluster size
    reached): the alert of ``day``, the local day of the cluster's first fever.
    ``name``: how the text names the place (a registered place's name; default the
    place's key); ``grid``: the registered grid it lies in (its worker is paged first)."""
    hours = rules.cluster.window_hours
    shown = name or place
    return Trigger(
        rule="fever_cluster",
        unit=community,
        window=f"{place}:{day.isoformat()}",
        severity=rules.cluster.severity,
        summary_zh=f"社区 {community} 的 {shown} 在 {hours:g} 小时内有 {fevers} 人发热",
        summary_en=f"{fevers} fevers within {hours:g} h at {shown} in community {community}",
        day=day,
        grid=grid,
    )


def aberrations(
    unit: str, metric: str, days: list[date], series: Series, rules: Rules
) -> list[tuple[Trigger, EarsPoint]]:
    """EARS alarms on the last day of a unit's daily series, one per method."""
    found = []
    for method in rules.aberration.methods:
        point = last_day(method, series, rules.aberration.params)
        if not point.alarm:
            continue
        day = days[-1]
        summary_zh, summary_en = _ears_summary(method, metric, unit, day, point)
        found.append(
            (
                Trigger(
                    rule=ears_rule(method, metric),
                    unit=unit,
                    window=day.isoformat(),
                    severity=rules.aberration.severity,
                    summary_zh=summary_zh,
                    summary_en=summary_en,
                    day=day,
                ),
                point,
            )
        )
    return found


def _ears_summary(
    method: str, metric: str, unit: str, day: date, point: EarsPoint
) -> tuple[str, str]:
    """What the alarm says. C3 sums three days' excess over the baseline, so it can
    fire on a day whose own count is under the one-day bound: it says so."""
    what_zh = "发热" if metric == "fevers" else "疑似"
    value = f"{point.value:g}"
    # the series count persons (each once a day) where the events name them
    persons_zh = f"{unit} {day} {what_zh} {value} 人（同一人当日只计一次）"
    persons_en = f"{metric} at {unit} on {day}: {value} persons (each counted once a day)"
    if method == "C3":
        return (
            f"{persons_zh}，近 3 日累计超出基线（EARS C3）",
            f"{persons_en}; the last 3 days together exceed the baseline (EARS C3)",
        )
    bound = f"{point.upper_bound:.1f}" if point.upper_bound is not None else "?"
    return (
        f"{persons_zh}，超过 EARS {method} 上限 {bound}",
        f"{persons_en}, above the EARS {method} upper bound {bound}",
    )
