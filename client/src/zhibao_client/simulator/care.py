"""Residents who need help: the key-person register and its persons' needs (pure, seeded
decisions; no I/O).

Every community keeps a register of its key persons (重点人群, seed 003): a share of its
residents (``key_person_scale``), each in one group or, for some, two (an elderly person
living alone who also needs medicine). Most are registered on the first day, a few on a
later one; a few leave one group during the run. A key person raises a need now and
then (food, medicine, the medical green channel, psychological support, other) as fits
their group, far more often while their community is restricted by an outbreak and
most of all in its sealed compound. The response service turns each need into a task
due within its limit; the community reports the task done (most in time, some late, a
few not within the run).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from zhibao_client.simulator.config import SimulationConfig
from zhibao_client.simulator.loop import Decision
from zhibao_client.simulator.people import Community
from zhibao_shared.care_events import KeyPersonCategory, NeedCategory, NeedUrgency

K, N = KeyPersonCategory, NeedCategory
#: How common each group is on a register.
GROUP_WEIGHTS: dict[KeyPersonCategory, int] = {
    K.ELDERLY_ALONE: 35,
    K.CHRONIC_MEDICINE: 30,
    K.DISABLED: 15,
    K.PREGNANT: 8,
    K.CHILD_UNATTENDED: 8,
    K.DIALYSIS: 4,
}
#: What a person of each group needs, by weight.
NEEDS_OF: dict[KeyPersonCategory, dict[NeedCategory, int]] = {
    K.ELDERLY_ALONE: {N.FOOD: 5, N.MEDICINE: 3, N.PSYCHOLOGICAL: 2, N.OTHER: 1},
    K.CHRONIC_MEDICINE: {N.MEDICINE: 6, N.FOOD: 2, N.MEDICAL: 1},
    K.DISABLED: {N.FOOD: 4, N.OTHER: 3, N.MEDICINE: 2},
    K.PREGNANT: {N.MEDICAL: 4, N.FOOD: 3, N.PSYCHOLOGICAL: 1},
    K.CHILD_UNATTENDED: {N.FOOD: 4, N.PSYCHOLOGICAL: 3, N.OTHER: 1},
    K.DIALYSIS: {N.MEDICAL: 6, N.FOOD: 1},
}
#: The groups whose medical needs are urgent half the time (the green channel).
_GREEN_CHANNEL = (K.DIALYSIS, K.PREGNANT)
#: The second group some persons are also in.
_ALSO = {K.ELDERLY_ALONE: K.CHRONIC_MEDICINE, K.DISABLED: K.CHRONIC_MEDICINE}
_SECOND_GROUP_SHARE = 0.15
#: The response service's default limits (``ZHIBAO_RESPONSE_NEED_LIMITS``), in hours:
#: (urgency, category) first, then (urgency, None).
NEED_LIMIT_HOURS: dict[tuple[NeedUrgency, NeedCategory | None], float] = {
    (NeedUrgency.URGENT, NeedCategory.MEDICAL): 2,
    (NeedUrgency.URGENT, None): 6,
    (NeedUrgency.NORMAL, NeedCategory.MEDICAL): 12,
    (NeedUrgency.NORMAL, None): 24,
}


@dataclass(frozen=True)
class KeyPerson:
    """A resident on their community's register, from day index ``since``; ``removed``:
    the day index they leave their first group (None: they stay)."""

    community: str
    person: int
    groups: tuple[KeyPersonCategory, ...]
    since: int
    removed: int | None = None

    def groups_on(self, index: int) -> tuple[KeyPersonCategory, ...]:
        """The groups the person is registered in on day ``index``."""
        if index < self.since:
            return ()
        if self.removed is not None and index >= self.removed:
            return self.groups[1:]
        return self.groups


def register(rng: random.Random, config: SimulationConfig, community: Community) -> list[KeyPerson]:
    """A community's key persons (a fixed number of draws per person)."""
    count = min(community.population, round(community.population * config.key_person_scale))
    persons = rng.sample(range(community.population), count)
    out = []
    for person in persons:
        group = rng.choices(list(GROUP_WEIGHTS), list(GROUP_WEIGHTS.values()))[0]
        second, later, removed = rng.random(), rng.random(), rng.random()
        day = rng.randrange(1, config.days) if config.days > 1 else 0
        also = _ALSO.get(group) if second < _SECOND_GROUP_SHARE else None
        since = day if later < config.key_person_later_share else 0
        gone = day if removed < config.key_person_removed_share and since == 0 else None
        groups = (group, also) if also is not None else (group,)
        out.append(KeyPerson(community.code, person, groups, since, gone))
    return out


def need_of(
    rng: random.Random, config: SimulationConfig, group: KeyPersonCategory, sealed: bool
) -> tuple[NeedCategory, NeedUrgency]:
    """What a person of ``group`` needs and how urgently (two draws)."""
    weights = NEEDS_OF[group]
    category = rng.choices(list(weights), list(weights.values()))[0]
    share = config.urgent_share * (3 if sealed else 1)
    if category is NeedCategory.MEDICAL and group in _GREEN_CHANNEL:
        share = 0.5
    urgent = rng.random() < share
    return category, NeedUrgency.URGENT if urgent else NeedUrgency.NORMAL


def limit_hours(category: NeedCategory, urgency: NeedUrgency) -> float:
    """How long a need may wait (the response service's default limits)."""
    return NEED_LIMIT_HOURS.get((urgency, category), NEED_LIMIT_HOURS[(urgency, None)])


def need_fate(rng: random.Random, config: SimulationConfig, limit: float) -> Decision:
    """When a need is met: three draws, whatever the outcome (so later needs do not shift)."""
    kind, timing, lateness = rng.random(), rng.random(), rng.random()
    if kind < config.unmet_need_share:
        return Decision(None, "visit", 0.0, late=False)
    if lateness < config.late_need_share:
        return Decision("done", "visit", limit + 0.5 + timing * 24, late=True)
    return Decision("done", "visit", 0.25 + timing * (limit - 0.5), late=False)
