"""Events for the benchmark and what the rollups must show afterwards.

Deterministic for a seed (but for times, relative to now). Every community
gets events; their times fall within the last hour (``days=0``) or are
spread over the last ``days`` days
(the history of a district that has run for a year). The ground truth is
kept per community, local day and metric: every flow and stock the workload
moves (events, screenings by site, fevers, travel flags, new and current
suspected cases, isolations started and in progress), so the rollups can be
checked figure by figure at every level.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.resident_id import check_character

FEVER_THRESHOLD = 37.3
ZONE = ZoneInfo("Asia/Shanghai")
SITES = ("gate", "building", "household", "door_to_door", "self_report", "checkpoint")

#: The figures the workload's truth holds; flows unless named in STOCKS.
METRICS = (
    "events",
    "late_events",
    "screenings",
    "fevers",
    "travel_flagged",
    *(f"screenings_{site}" for site in SITES),
    "new_suspected",
    "current_suspected",
    "new_confirmed",
    "current_confirmed",
    "isolation_started",
    "in_isolation",
)
STOCKS = ("current_suspected", "current_confirmed", "in_isolation")

#: (community, local day, metric) → count (for stocks: the day's change).
Truth = Counter[tuple[str, date, str]]


@dataclass(frozen=True)
class Workload:
    """The events to send and the truth they add to the rollups."""

    events: list[dict[str, Any]]
    truth: Truth

    @property
    def fevers(self) -> int:
        """Screenings at or above the fever threshold."""
        return sum(v for (_c, _d, metric), v in self.truth.items() if metric == "fevers")

    def days(self) -> tuple[date, date]:
        """The first and last local day the events fall on."""
        return span(self.truth)


def span(truth: Truth) -> tuple[date, date]:
    """The first and last local day a truth counts anything on."""
    days = [day for _c, day, _m in truth]
    return min(days), max(days)


def local_day(moment: datetime) -> date:
    """The district's local date of a moment (Asia/Shanghai, as the services count)."""
    return moment.astimezone(ZONE).date()


def resident_id(n: int) -> str:
    """A valid resident ID number, distinct for every ``n`` below 29,000,000."""
    born = datetime(1940, 1, 1) + timedelta(days=n // 1000 % 29_000)
    first17 = f"640106{born:%Y%m%d}{n % 1000:03d}"
    return first17 + check_character(first17)


def communities() -> list[str]:
    """The codes of every community in the registry."""
    return [u.code for u in load_registry().at_level(Level.COMMUNITY)]


def _when(rng: random.Random, now: datetime, days: float) -> datetime:
    if days <= 0:
        return now - timedelta(seconds=rng.randrange(60, 3600))
    # an hour of margin: events still pass intake's 400-day horizon when POSTed later
    return now - timedelta(seconds=rng.uniform(60, days * 86_400 - 3600))


def build_workload(
    count: int,
    seed: int = 20200120,
    tag: str = "b",
    *,
    days: float = 0,
    people_from: int = 0,
) -> Workload:
    """``count`` events in every community: screenings, 1 in 200 a suspected case and
    1 in 500 a start of home isolation, each about a different person.

    ``people_from`` numbers the persons (keep workloads sent to one system apart).
    """
    rng = random.Random(seed)
    codes = communities()
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for i in range(count):
        community = codes[i] if i < len(codes) else rng.choice(codes)
        envelope = {
            "specversion": "1.0",
            "id": f"{tag}-{seed}-{i}",
            "source": f"/{community}/gate{i % 7}",
            "subject": community,
            "time": _when(rng, now, days).isoformat(),
        }
        if i % 200 == 199 or i % 500 == 250:
            events.append({**envelope, **_about_person(i, resident_id(people_from + i))})
        else:
            data = _screening(rng, i, people_from)
            events.append({**envelope, "type": "zhibao.screening.v1", "data": data})
    return Workload(events, truth_of(events, now))


def truth_of(events: list[dict[str, Any]], received: datetime) -> Truth:
    """What ``events`` add to the rollups when intake receives them at ``received``.

    Every case and isolation start is taken to be about a person not seen before
    (the workloads make it so). Lateness is judged against ``received``'s local
    day: a phase that runs across local midnight (16:00 UTC) would see a few
    events counted late that the truth does not expect.
    """
    received_day = local_day(received)
    truth: Truth = Counter()
    for event in events:
        community, data = event["subject"], event["data"]
        day = local_day(datetime.fromisoformat(event["time"]))
        truth[(community, day, "events")] += 1
        truth[(community, day, "late_events")] += day < received_day
        if event["type"] == "zhibao.case.v1":
            kind = data["classification"]
            truth[(community, day, f"new_{kind}")] += 1
            truth[(community, day, f"current_{kind}")] += 1
        elif event["type"] == "zhibao.isolation.v1":
            truth[(community, day, "isolation_started")] += 1
            truth[(community, day, "in_isolation")] += 1
        else:
            truth[(community, day, "screenings")] += 1
            truth[(community, day, f"screenings_{data['site']}")] += 1
            truth[(community, day, "fevers")] += data["temperature_c"] >= FEVER_THRESHOLD
            truth[(community, day, "travel_flagged")] += data["travel_from_risk_area"]
    return +truth


def _about_person(i: int, id_number: str) -> dict[str, Any]:
    person = {"id_number": id_number}
    if i % 500 == 250:
        data = {"person": person, "action": "start", "kind": "home"}
        return {"type": "zhibao.isolation.v1", "data": data}
    return {"type": "zhibao.case.v1", "data": {"person": person, "classification": "suspected"}}


def _screening(rng: random.Random, i: int, people_from: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "temperature_c": round(rng.gauss(36.6, 0.35), 1),
        "site": rng.choice(SITES),
        "building": str(rng.randrange(1, 30)),
        "travel_from_risk_area": i % 40 == 3,
    }
    if i % 50 == 0:  # a named resident (a screening counts as such, named or not)
        data["person"] = {"id_number": resident_id(people_from + i)}
    return data
