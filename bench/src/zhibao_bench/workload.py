"""Events for the benchmark: a day of screenings and cases across the sample district.

Deterministic for a seed. Times fall within the last hour so every event is
accepted; the ground truth (events and fevers) is returned alongside.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zhibao_shared.hierarchy import Level, load_registry
from zhibao_shared.resident_id import check_character

FEVER_THRESHOLD = 37.3


@dataclass(frozen=True)
class Workload:
    """The events to send and what the rollups must show afterwards."""

    events: list[dict[str, Any]]
    fevers: int


def _resident_id(rng: random.Random) -> str:
    born = datetime(1940, 1, 1) + timedelta(days=rng.randrange(0, 29_000))
    first17 = f"640106{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + check_character(first17)


def build_workload(count: int, seed: int = 20200120, tag: str = "b") -> Workload:
    """``count`` screenings (1 in 50 with a resident ID, 1 in 200 a suspected case)."""
    rng = random.Random(seed)
    communities = [u.code for u in load_registry().at_level(Level.COMMUNITY)]
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    fevers = 0
    for i in range(count):
        community = rng.choice(communities)
        when = (now - timedelta(seconds=rng.randrange(60, 3600))).isoformat()
        envelope = {
            "specversion": "1.0",
            "id": f"{tag}-{seed}-{i}",
            "source": f"/{community}/gate-{i % 7}",
            "subject": community,
            "time": when,
        }
        if i % 200 == 199:
            person = {"id_number": _resident_id(rng)}
            events.append(
                {
                    **envelope,
                    "type": "zhibao.case.v1",
                    "data": {"person": person, "classification": "suspected"},
                }
            )
            continue
        temperature = round(rng.gauss(36.6, 0.35), 1)
        fevers += temperature >= FEVER_THRESHOLD
        data: dict[str, Any] = {
            "temperature_c": temperature,
            "site": rng.choice(["gate", "building", "self_report", "checkpoint"]),
            "building": str(rng.randrange(1, 30)),
        }
        if i % 50 == 0:
            data["person"] = {"id_number": _resident_id(rng)}
        events.append({**envelope, "type": "zhibao.screening.v1", "data": data})
    return Workload(events, fevers)
