"""A small places registry, a seeded scenario of events at its places (with corrections),
and the naive truth of every place's figures, for the per-place rollup tests.

The truth replays each person's reports up to each day and counts events per day, in
the places each event names, without the aggregator's incremental deltas.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.aggregator.generator import FEVER, SITES, day_of
from zhibao_shared.events import (
    STORED,
    Classification,
    PublishedCase,
    PublishedCorrection,
    PublishedEvent,
    PublishedScreening,
)

COMMUNITY, OTHER, STREET = "640106001001", "640106001002", "640106001"
FENGLIN, WEILAI, JUAN = f"{COMMUNITY}-C001", f"{COMMUNITY}-C002", f"{OTHER}-C001"
PLACES = f"""# Test places: two communities of 黄河东路街道
{{"id": "{COMMUNITY}-G001", "name": "第1网格", "households": 450, "worker": "网格员 王芳"}}
{{"id": "{COMMUNITY}-G002", "name": "第2网格", "households": 620, "worker": "网格员 李强"}}
{{"id": "{FENGLIN}", "name": "枫林湾", "aliases": ["枫林湾小区"], "households": 540}}
{{"id": "{FENGLIN}-B001", "name": "1号楼", "households": 90, "grid": "{COMMUNITY}-G001"}}
{{"id": "{FENGLIN}-B002", "name": "2号楼", "households": 90, "grid": "{COMMUNITY}-G001"}}
{{"id": "{FENGLIN}-B003", "name": "3号楼", "households": 90, "grid": "{COMMUNITY}-G002"}}
{{"id": "{WEILAI}", "name": "未来城", "households": 530}}
{{"id": "{WEILAI}-B001", "name": "1号楼", "households": 530, "grid": "{COMMUNITY}-G002"}}
{{"id": "{OTHER}-G001", "name": "第1网格", "households": 300, "worker": "网格员 赵敏"}}
{{"id": "{OTHER}-G002", "name": "第2网格", "households": 280, "worker": "网格员 赵敏"}}
{{"id": "{JUAN}", "name": "居安家园", "households": 580}}
{{"id": "{JUAN}-B001", "name": "1号楼", "households": 300, "grid": "{OTHER}-G001"}}
"""
#: Each community's registered places as (building, compound, grid, compound label,
#: building label) choices; the labels are as a reporter would write them.
BUILDINGS = {
    COMMUNITY: [
        (f"{FENGLIN}-B001", FENGLIN, f"{COMMUNITY}-G001", "枫林湾", "1号楼"),
        (f"{FENGLIN}-B002", FENGLIN, f"{COMMUNITY}-G001", "枫林湾小区", "2栋"),
        (f"{FENGLIN}-B003", FENGLIN, f"{COMMUNITY}-G002", "枫林湾", "3栋"),
        (f"{WEILAI}-B001", WEILAI, f"{COMMUNITY}-G002", "未来城", "#1"),
    ],
    OTHER: [(f"{JUAN}-B001", JUAN, f"{OTHER}-G001", "居安家园", "1幢")],
}
GRIDS = {COMMUNITY: [f"{COMMUNITY}-G001", f"{COMMUNITY}-G002"], OTHER: [f"{OTHER}-G002"]}
C = Classification
TRAJECTORIES = [
    [C.SUSPECTED, C.CONFIRMED, C.RECOVERED],
    [C.CLOSE_CONTACT, C.EXCLUDED],
    [C.CONFIRMED],
    [C.ASYMPTOMATIC, C.CONFIRMED, C.DECEASED],
    [C.CONFIRMED, C.RECOVERED, C.CONFIRMED],
]
CURRENT = (C.SUSPECTED, C.CONFIRMED, C.ASYMPTOMATIC, C.CLOSE_CONTACT)
CUMULATIVE = {
    C.CONFIRMED: "cumulative_confirmed",
    C.RECOVERED: "cumulative_recovered",
    C.DECEASED: "cumulative_deceased",
}


def write_places(directory: Path) -> Path:
    """The test places file in ``directory``."""
    path = directory / "places.jsonl"
    path.write_text(PLACES, encoding="utf-8")
    return path


def place_data(rng: random.Random, community: str, screening: bool) -> dict[str, Any]:
    """Where an event happened, as intake publishes it: labels and the ids it matched."""
    roll = rng.random()
    if roll < 0.45:
        building, compound, grid, compound_label, building_label = rng.choice(BUILDINGS[community])
        return {
            "compound": compound_label,
            "building": building_label,
            "compound_id": compound,
            "building_id": building,
            "grid_id": grid,
        }
    if roll < 0.6:
        _b, compound, _g, compound_label, _bl = rng.choice(BUILDINGS[community])
        return {"compound": compound_label, "compound_id": compound}
    if roll < 0.7 and screening:
        return {"grid": "网格", "grid_id": rng.choice(GRIDS[community])}
    if roll < 0.85:
        return {"compound": rng.choice(["老旧小区", "城中村"]), "building": "9栋"}
    return {}


@dataclass
class PlaceScenario:
    """Events to publish (corrections included), and the events they amount to."""

    publish: list[PublishedEvent]
    expected: list[PublishedEvent]
    days: list[date] = field(default_factory=list)


def generate(seed: int, screenings: int = 300, persons: int = 50) -> PlaceScenario:
    """Screenings and case histories at places over 10 days; a sixth of them corrected."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    start = now - timedelta(days=9)
    events: list[PublishedEvent] = []

    def envelope(community: str, happened: datetime, kind: str) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": f"/{community}/sys",
            "subject": community,
            "type": f"zhibao.{kind}.v1",
            "time": happened,
            "reporter": "tok-test",
            "receivedat": happened,
        }

    def moment() -> datetime:
        return start + timedelta(seconds=rng.randrange(int((now - start).total_seconds())))

    for _ in range(screenings):
        community = rng.choice([COMMUNITY, OTHER])
        events.append(
            PublishedScreening.model_validate(
                envelope(community, moment(), "screening")
                | {"data": _screening(rng) | place_data(rng, community, True)}
            )
        )
    for _ in range(persons):
        pid = uuid.UUID(int=rng.getrandbits(128)).hex
        community = rng.choice([COMMUNITY, OTHER])
        when = moment() - timedelta(days=2)
        for classification in rng.choice(TRAJECTORIES):
            when = min(when + timedelta(hours=rng.randrange(1, 60)), now)
            data = {"person": {"pid": pid}, "classification": classification.value}
            body = envelope(community, when, "case") | {
                "data": data | place_data(rng, community, False)
            }
            events.append(PublishedCase.model_validate(body))
    fixes, expected = _corrections(rng, events)
    published: list[PublishedEvent] = [*events, *fixes]
    rng.shuffle(published)
    days = sorted({day_of(start) + timedelta(days=i) for i in range(10)})
    return PlaceScenario(published, expected, days)


def _screening(rng: random.Random) -> dict[str, Any]:
    return {
        "temperature_c": rng.choice([36.5, 37.2, 37.3, 38.6]),
        "site": rng.choice(SITES),
        "travel_from_risk_area": rng.random() < 0.2,
    }


def _corrections(
    rng: random.Random, events: list[PublishedEvent]
) -> tuple[list[PublishedCorrection], list[PublishedEvent]]:
    """Retract or replace (elsewhere, as something else) a sixth of the events, one to
    two corrections each; the last by (time, id) decides."""
    fixes: list[PublishedCorrection] = []
    expected: list[PublishedEvent] = []
    for event in events:
        if rng.random() >= 1 / 6:
            expected.append(event)
            continue
        mine = [_correction(rng, event, len(fixes) + i) for i in range(rng.choice([1, 2]))]
        fixes += mine
        last = max(mine, key=lambda f: (f.time, f.dedup_key))
        new = last.data.data
        if new is not None:
            model = type(event.data)
            expected.append(
                event.model_copy(update={"data": model.model_validate(new.model_dump())})
            )
    return fixes, expected


def _correction(rng: random.Random, event: PublishedEvent, n: int) -> PublishedCorrection:
    body: dict[str, Any] = {
        "corrects": {"source": event.source, "id": event.id},
        "action": "retract",
        "reason": "generated",
    }
    if rng.random() < 0.7:
        screening = isinstance(event, PublishedScreening)
        if screening:
            data = _screening(rng)
        else:
            assert isinstance(event, PublishedCase)
            classification = rng.choice(list(Classification)).value
            data = {"person": {"pid": event.data.person.pid}, "classification": classification}
        data |= place_data(rng, event.subject, screening)
        body |= {"action": "replace", "type": event.type.value, "data": data}
    when = event.time + timedelta(minutes=rng.randrange(1, 600))
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
    }
    return PublishedCorrection.model_validate(document, context=STORED)


Truth = dict[tuple[str, date], dict[str, int]]


def _places_of(data: Any) -> list[str]:
    return [p for p in (data.building_id, data.compound_id, data.grid_id) if p is not None]


def truth(
    events: list[PublishedEvent], days: list[date]
) -> tuple[Truth, Counter[tuple[str, date]]]:
    """Every place's figures on every day, and each community's unregistered events per
    day, counted naively from the events as their corrections leave them."""
    flows: Counter[tuple[str, date, str]] = Counter()
    unregistered: Counter[tuple[str, date]] = Counter()
    reports: dict[str, list[tuple[datetime, str, C, Any]]] = defaultdict(list)
    for event in events:
        data: Any = event.data
        day = day_of(event.time)
        named = data.compound or data.building or getattr(data, "grid", None)
        if named and not _places_of(data):
            unregistered[(event.subject, day)] += 1
        for place in _places_of(data):
            flows[(place, day, "events")] += 1
            if isinstance(event, PublishedScreening):
                sd = event.data
                flows[(place, day, "screenings")] += 1
                flows[(place, day, f"screenings_{sd.site.value}")] += 1
                flows[(place, day, "fevers")] += int(sd.temperature_c >= FEVER)
                flows[(place, day, "travel_flagged")] += int(sd.travel_from_risk_area)
        if isinstance(event, PublishedCase):
            reports[event.data.person.pid].append(
                (event.time, event.dedup_key, event.data.classification, event.data)
            )
    out: Truth = defaultdict(dict)
    for day in days:
        for (place, d, metric), n in flows.items():
            if d == day and n:
                out[(place, day)][metric] = out[(place, day)].get(metric, 0) + n
    for history in reports.values():
        _case_truth(sorted(history, key=lambda r: (r[0], r[1])), days, out)
    return out, unregistered


def _case_truth(history: list[tuple[datetime, str, C, Any]], days: list[date], out: Truth) -> None:
    """One person's new/current/cumulative figures per place dimension, replayed per day."""
    for dimension in ("compound_id", "building_id", "grid_id"):
        first: dict[C, tuple[date, str | None]] = {}
        for time, _key, classification, data in history:
            first.setdefault(classification, (day_of(time), getattr(data, dimension)))
        for classification, (day, place) in first.items():
            if place is not None and day in days:
                key = f"new_{classification.value}"
                out[(place, day)][key] = out[(place, day)].get(key, 0) + 1
        for day in days:
            known = [r for r in history if day_of(r[0]) <= day]
            if not known:
                continue
            _t, _k, latest, data = known[-1]
            place = getattr(data, dimension)
            if place is not None and latest in CURRENT:
                key = f"current_{latest.value}"
                out[(place, day)][key] = out[(place, day)].get(key, 0) + 1
            for classification, name in CUMULATIVE.items():
                found = first.get(classification)
                if found is not None and found[1] is not None and found[0] <= day:
                    out[(found[1], day)][name] = out[(found[1], day)].get(name, 0) + 1
