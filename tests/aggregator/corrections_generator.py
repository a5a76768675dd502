"""Seeded corrections of a generated scenario, with the scenario they should amount to.

The expected result is computed without the aggregator's logic: each corrected event's
last correction by (time, identity) decides, a case report's correction from a higher
level over any from below — retracted events are left out of the scenario, replaced
ones carry the new data — and the generator's naive truth is taken of that. The
corrections go into the stream at random places, some before their event, some twice.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from tests.aggregator.generator import SITES, ZONE, Scenario
from zhibao_aggregator.domain.contributions import units_of
from zhibao_shared.events import (
    STORED,
    Classification,
    PublishedCase,
    PublishedCorrection,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
)


@dataclass
class Corrected:
    """What to publish, the scenario it should amount to, and the corrections per unit-day."""

    publish: Scenario
    expected: Scenario
    corrections: Counter[tuple[str, date]]


def _new_data(event: PublishedEvent, rng: random.Random) -> dict[str, Any]:
    if isinstance(event, PublishedScreening):
        return {
            "temperature_c": rng.choice([36.4, 37.2, 37.3, 38.1, 39.0]),
            "site": rng.choice(SITES),
            "travel_from_risk_area": rng.random() < 0.3,
        }
    if isinstance(event, PublishedCase):
        pid = event.data.person.pid if rng.random() < 0.8 else f"{rng.getrandbits(128):032x}"
        return {"person": {"pid": pid}, "classification": rng.choice(list(Classification)).value}
    if isinstance(event, PublishedIsolation):
        action = rng.choice(["start", "check", "end", "breach"])
        return {"person": event.data.person.model_dump(), "action": action, "kind": "home"}
    assert isinstance(event, PublishedDailyReport)
    return {"date": event.data.date.isoformat(), "zero": not event.data.zero}


#: The levels corrections are reported at (the reporter's scope; None: not stamped), and
#: their standing over a case report's corrections: a higher level's stands.
STANDING = {None: 0, 12: 0, 9: 1, 6: 2, 4: 3}


def _level(event: PublishedEvent, rng: random.Random) -> dict[str, str]:
    length = rng.choice(list(STANDING))
    return {} if length is None else {"reporterlevel": event.subject[:length]}


def _deciding(event: PublishedEvent, fixes: list[PublishedCorrection]) -> PublishedCorrection:
    """The correction that decides ``event`` (of a case, the highest level's)."""

    def standing(fix: PublishedCorrection) -> int:
        if not isinstance(event, PublishedCase) or fix.reporterlevel is None:
            return 0
        return STANDING[len(fix.reporterlevel)]

    return max(fixes, key=lambda fix: (standing(fix), fix.order))


def _correction(event: PublishedEvent, rng: random.Random, n: int) -> PublishedCorrection:
    body: dict[str, Any] = {
        "corrects": {"source": event.source, "id": event.id},
        "action": "retract",
        "reason": "generated",
    }
    if rng.random() < 0.6:
        body |= {"action": "replace", "type": event.type.value, "data": _new_data(event, rng)}
    when = event.time + timedelta(minutes=rng.randrange(1, 3000))
    document = {
        "specversion": "1.0",
        "id": f"fix-{n}",
        "source": f"/{event.subject}/fixer",
        "type": "zhibao.correction.v1",
        "subject": event.subject,
        "time": when,
        "reporter": "tok-test",
        "receivedat": when,
        "data": body,
        **_level(event, rng),
    }
    return PublishedCorrection.model_validate(document, context=STORED)


def _outcome(event: PublishedEvent, last: PublishedCorrection) -> PublishedEvent | None:
    """``event`` as its last correction leaves it (None: retracted)."""
    new = last.data.data
    if new is None:
        return None
    return event.model_copy(update={"data": type(event.data).model_validate(new.model_dump())})


def correct(scenario: Scenario, seed: int, share: float = 0.1) -> Corrected:
    """Correct about ``share`` of the scenario's events, once to three times each."""
    rng = random.Random(seed)
    chosen = rng.sample(scenario.unique, int(len(scenario.unique) * share))
    fixes: dict[str, list[PublishedCorrection]] = {}
    n = 0
    for event in chosen:
        fixes[event.dedup_key] = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            n += 1
            fixes[event.dedup_key].append(_correction(event, rng, n))
    expected: list[PublishedEvent] = []
    counted: Counter[tuple[str, date]] = Counter()
    for event in scenario.unique:
        mine = fixes.get(event.dedup_key)
        if not mine:
            expected.append(event)
            continue
        for unit in units_of(event.subject):
            counted[(unit, event.time.astimezone(ZONE).date())] += len(mine)
        outcome = _outcome(event, _deciding(event, mine))
        if outcome is not None:
            expected.append(outcome)
    publish = list(scenario.publish)
    for corrections in fixes.values():
        for one in corrections:
            publish.insert(rng.randrange(len(publish) + 1), (one, one.dedup_key))
            if rng.random() < 0.1:
                publish.insert(rng.randrange(len(publish) + 1), (one, f"{one.dedup_key} again"))
    return Corrected(
        Scenario(scenario.unique, publish, scenario.days),
        Scenario(expected, [], scenario.days),
        counted,
    )
