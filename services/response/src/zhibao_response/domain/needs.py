"""Needs become tasks (pure: no I/O).

Each ``zhibao.need.v1`` event becomes one task: kind ``need_<category>``, assigned to
the need's community, about its person (the pseudonym), due at the need's time plus
the limit for its category and urgency. The task's id is derived from the need's
identity, so a redelivered or resent need names the task already issued.

Limits (``ZHIBAO_RESPONSE_NEED_LIMITS``): comma-separated ``<urgency>=<hours>`` or
``<urgency>.<category>=<hours>``; the category's own limit wins over its urgency's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from zhibao_shared.care_events import NeedCategory, NeedUrgency, PublishedNeed

DEFAULT_NEED_LIMITS = "urgent.medical=2,urgent=6,normal.medical=12,normal=24"
_ENTRY = re.compile(r"^(normal|urgent)(?:\.([a-z]+))?=([0-9]+(?:\.[0-9]+)?)$")


@dataclass(frozen=True)
class NeedLimits:
    """How long a need may wait, by urgency and (optionally) category."""

    hours: dict[tuple[NeedUrgency, NeedCategory | None], float]

    def limit(self, category: NeedCategory, urgency: NeedUrgency) -> timedelta:
        """The limit of a need of ``category`` and ``urgency``."""
        hours = self.hours.get((urgency, category), self.hours[(urgency, None)])
        return timedelta(hours=hours)


def parse_need_limits(text: str) -> NeedLimits:
    """The limits ``text`` states; ValueError naming the entry at fault. Both urgencies
    need a limit of their own (a category's may be added)."""
    hours: dict[tuple[NeedUrgency, NeedCategory | None], float] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        found = _ENTRY.fullmatch(entry)
        if found is None:
            raise ValueError(
                f"{entry!r} is not <urgency>[.<category>]=<hours> (e.g. urgent.medical=2)"
            )
        urgency, category, value = found.groups()
        known = {c.value for c in NeedCategory}
        if category is not None and category not in known:
            raise ValueError(f"{entry!r}: unknown category; one of {sorted(known)}")
        number = float(value)
        if not (number > 0 and math.isfinite(number)):
            raise ValueError(f"{entry!r}: the limit must be a positive number of hours")
        key = (NeedUrgency(urgency), NeedCategory(category) if category else None)
        hours[key] = number
    missing = [u.value for u in NeedUrgency if (u, None) not in hours]
    if missing:
        raise ValueError(f"no limit for urgency {', '.join(missing)} (e.g. {missing[0]}=24)")
    return NeedLimits(hours)


@dataclass(frozen=True)
class NeedTask:
    """The task a need becomes (its person only as the pseudonym)."""

    id: str
    unit: str
    kind: str
    due: datetime
    pid: str
    urgency: str
    compound: str | None
    reporter: str


def need_task(need: PublishedNeed, limits: NeedLimits) -> NeedTask:
    """The task ``need`` becomes."""
    data = need.data
    return NeedTask(
        id=need.task_id,
        unit=need.subject,
        kind=need.task_kind,
        due=need.time + limits.limit(data.category, data.urgency),
        pid=data.person.pid,
        urgency=data.urgency.value,
        compound=data.compound,
        reporter=need.reporter,
    )
