"""A seeded generator of published events with an independently computed ground truth.

The truth is computed the naive way (replaying each person's history up to
each day, counting events per day) rather than with the aggregator's
incremental deltas, so the two can disagree if the aggregator is wrong.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from zhibao_shared.events import (
    Classification,
    PublishedCase,
    PublishedDailyReport,
    PublishedEvent,
    PublishedIsolation,
    PublishedScreening,
)
from zhibao_shared.hierarchy import Level, Registry, load_registry

ZONE = ZoneInfo("Asia/Shanghai")
FEVER = 37.3
DUE = timedelta(days=1, hours=9)
C = Classification
TRAJECTORIES = [
    [C.SUSPECTED, C.CONFIRMED, C.RECOVERED],
    [C.CLOSE_CONTACT, C.EXCLUDED],
    [C.SUSPECTED, C.EXCLUDED],
    [C.CONFIRMED],
    [C.CONFIRMED, C.CONFIRMED, C.RECOVERED],
    [C.ASYMPTOMATIC, C.CONFIRMED, C.DECEASED],
    [C.CLOSE_CONTACT, C.SUSPECTED, C.CONFIRMED, C.RECOVERED],
    [C.CONFIRMED, C.RECOVERED, C.CONFIRMED],
]
SITES = ["gate", "building", "household", "door_to_door", "self_report", "checkpoint"]


def day_of(moment: datetime) -> date:
    """Local day in the district."""
    return moment.astimezone(ZONE).date()


@dataclass
class Scenario:
    """Events to publish (with repeats) and the unique events that count."""

    unique: list[PublishedEvent]
    publish: list[tuple[PublishedEvent, str]] = field(default_factory=list)
    days: list[date] = field(default_factory=list)


def generate(
    seed: int, *, screenings: int = 1500, persons: int = 160, isolated: int = 80
) -> Scenario:
    """A few thousand events over the last 20 days; ``publish`` lists (event, msg id)."""
    rng = random.Random(seed)
    communities = [u.code for u in load_registry().at_level(Level.COMMUNITY)]
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    start = now - timedelta(days=20)
    events: list[PublishedEvent] = []

    def moment() -> datetime:
        return start + timedelta(seconds=rng.randrange(int((now - start).total_seconds())))

    def received(happened: datetime) -> datetime:
        lag = timedelta(days=rng.choice([1, 2, 3])) if rng.random() < 0.1 else timedelta(minutes=3)
        return min(happened + lag, now)

    def envelope(community: str, happened: datetime) -> dict[str, object]:
        return {
            "specversion": "1.0",
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": f"/{community}/sys-{rng.randrange(3)}",
            "subject": community,
            "time": happened,
            "reporter": "tok-test",
            "receivedat": received(happened),
        }

    for _ in range(screenings):
        community = rng.choice(communities)
        temperature = rng.choice([36.5, 36.8, 37.2, 37.3, 37.9, 38.6])
        data = {
            "temperature_c": temperature,
            "site": rng.choice(SITES),
            "travel_from_risk_area": rng.random() < 0.05,
        }
        body = envelope(community, moment()) | {"type": "zhibao.screening.v1", "data": data}
        events.append(PublishedScreening.model_validate(body))
    for _ in range(persons):
        pid = uuid.UUID(int=rng.getrandbits(128)).hex
        community = rng.choice(communities)
        when = moment() - timedelta(days=3)
        for classification in rng.choice(TRAJECTORIES):
            when = min(when + timedelta(hours=rng.randrange(1, 80)), now)
            if rng.random() < 0.1:
                community = rng.choice(communities)  # the person moved
            data = {"person": {"pid": pid}, "classification": classification.value}
            events.append(
                PublishedCase.model_validate(
                    envelope(community, when) | {"type": "zhibao.case.v1", "data": data}
                )
            )
    for _ in range(isolated):
        pid = uuid.UUID(int=rng.getrandbits(128)).hex
        community = rng.choice(communities)
        when = moment() - timedelta(days=5)
        actions = ["start", *(["check"] * rng.randrange(0, 8)), "end"]
        if rng.random() < 0.3:
            actions.pop()  # still isolated
        if rng.random() < 0.2:
            actions.insert(2, "breach")
        for action in actions:
            when = min(when + timedelta(hours=rng.randrange(6, 30)), now)
            if rng.random() < 0.15:
                continue  # a missed check
            data = {"person": {"pid": pid}, "action": action, "kind": "home"}
            events.append(
                PublishedIsolation.model_validate(
                    envelope(community, when) | {"type": "zhibao.isolation.v1", "data": data}
                )
            )
    days = sorted({day_of(start) + timedelta(days=i) for i in range(21)})
    for community in communities:
        for day in days[-10:-1]:
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                midnight = datetime.combine(day, datetime.min.time(), tzinfo=ZONE)
                happened = midnight + timedelta(hours=rng.choice([17, 20, 23]))
                body = envelope(community, min(happened, now))
                body["receivedat"] = min(
                    happened + timedelta(hours=rng.choice([0, 1, 12, 30])), now
                )
                body |= {
                    "type": "zhibao.daily_report.v1",
                    "data": {"date": day.isoformat(), "zero": rng.random() < 0.5},
                }
                events.append(PublishedDailyReport.model_validate(body))
    rng.shuffle(events)
    publish = [(e, e.dedup_key) for e in events]
    for event in rng.sample(events, len(events) // 20):
        # Beyond JetStream's duplicate window: the stream holds it twice.
        publish.insert(rng.randrange(len(publish)), (event, f"{event.dedup_key} again"))
    return Scenario(events, publish, days)


Figures = dict[str, object]
CaseFact = tuple[datetime, str, str, Classification]
IsolationFact = tuple[datetime, str, str, str]
ReportFact = tuple[datetime, str, bool]


def _first_by_class(facts: list[CaseFact]) -> dict[C, CaseFact]:
    first: dict[C, CaseFact] = {}
    for fact in facts:
        first.setdefault(fact[3], fact)
    return first


def truth(scenario: Scenario) -> dict[tuple[str, date], Figures]:
    """Expected figures for every unit and day of the scenario (naive replay)."""
    registry = load_registry()
    units = [u.code for u in registry]
    flows: dict[tuple[str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(community: str, day: date, metric: str, n: int = 1) -> None:
        for code in _registered_prefixes(community, registry):
            flows[(code, day)][metric] += n

    cases: dict[str, list[CaseFact]] = defaultdict(list)
    isolation: dict[str, list[IsolationFact]] = defaultdict(list)
    reports: dict[tuple[str, date], list[ReportFact]] = defaultdict(list)
    for e in scenario.unique:
        day = day_of(e.time)
        add(e.subject, day, "events")
        if day_of(e.receivedat) > day:
            add(e.subject, day, "late_events")
        if isinstance(e, PublishedScreening):
            add(e.subject, day, "screenings")
            add(e.subject, day, f"screenings_{e.data.site.value}")
            if e.data.temperature_c >= FEVER:
                add(e.subject, day, "fevers")
            if e.data.travel_from_risk_area:
                add(e.subject, day, "travel_flagged")
        elif isinstance(e, PublishedCase):
            cases[e.data.person.pid].append((e.time, e.dedup_key, e.subject, e.data.classification))
        elif isinstance(e, PublishedIsolation):
            isolation[e.data.person.pid].append(
                (e.time, e.dedup_key, e.subject, e.data.action.value)
            )
        elif isinstance(e, PublishedDailyReport):
            reports[(e.subject, e.data.date)].append((e.receivedat, e.dedup_key, e.data.zero))
    for history in cases.values():
        history.sort()
        for cls, fact in _first_by_class(history).items():
            add(fact[2], day_of(fact[0]), f"new_{cls.value}")
    for checks in isolation.values():
        checks.sort()
        for step in checks:
            action = step[3]
            if action in ("check", "breach"):
                add(
                    step[2],
                    day_of(step[0]),
                    "isolation_checks" if action == "check" else "isolation_breaches",
                )
    for (community, day), facts in reports.items():
        first = min(facts)
        add(community, day, "reports_received")
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=ZONE)
        add(community, day, "reports_on_time" if first[0] <= midnight + DUE else "reports_late")
    firsts = [_first_by_class(h) for h in cases.values()]
    out: dict[tuple[str, date], Figures] = {}
    for d in scenario.days:
        stocks = _stocks(d, cases, firsts, isolation, registry)
        for u in units:
            out[(u, d)] = _figures(u, d, flows, stocks, registry)
    return out


def _registered_prefixes(community: str, registry: Registry) -> list[str]:
    """Every registered unit whose code starts ``community`` (the naive rule: any prefix)."""
    return [community[:n] for n in range(1, len(community) + 1) if community[:n] in registry]


@dataclass
class _Stocks:
    """One day's states per unit, each person counted in every unit above its community."""

    current: dict[C, Counter[str]]
    firsts_until_day: dict[C, Counter[str]]
    confirmed_in_window: Counter[str]
    last_confirmed: dict[str, date]
    in_isolation: Counter[str]
    isolated_yesterday: Counter[str]
    checked: Counter[str]


def _stocks(
    day: date,
    cases: dict[str, list[CaseFact]],
    firsts: list[dict[C, CaseFact]],
    isolation: dict[str, list[IsolationFact]],
    registry: Registry,
) -> _Stocks:
    def up(community: str) -> list[str]:
        return _registered_prefixes(community, registry)

    stocks = _Stocks(
        defaultdict(Counter), defaultdict(Counter), Counter(), {}, Counter(), Counter(), Counter()
    )
    for h in cases.values():
        last = [f for f in h if day_of(f[0]) <= day]
        if last:
            stocks.current[last[-1][3]].update(up(last[-1][2]))
    for first in firsts:
        for cls, fact in first.items():
            d = day_of(fact[0])
            if d > day:
                continue
            stocks.firsts_until_day[cls].update(up(fact[2]))
            if cls is C.CONFIRMED:
                if day - timedelta(days=14) < d:
                    stocks.confirmed_in_window.update(up(fact[2]))
                for unit in up(fact[2]):
                    stocks.last_confirmed[unit] = max(d, stocks.last_confirmed.get(unit, d))
    for steps in isolation.values():
        if where := _isolation_state(steps, day)[0]:
            stocks.in_isolation.update(up(where))
        if where := _isolation_state(steps, day - timedelta(days=1))[0]:
            stocks.isolated_yesterday.update(up(where))
        if where := _checked_due_community(steps, day):
            stocks.checked.update(up(where))
    return stocks


def _isolation_state(
    history: list[IsolationFact], day: date
) -> tuple[str | None, int | None, bool]:
    """(community of the open isolation at end of day, its start day, checked-due on day)."""
    open_at: tuple[str, date] | None = None
    checked = False
    for when, _key, community, action in history:
        d = day_of(when)
        if d > day:
            break
        if action == "start" and open_at is None:
            open_at = (community, d)
        elif action == "end" and open_at is not None:
            open_at = None
        elif action == "check" and open_at is not None and open_at[1] < d == day:
            checked = True
    return (open_at[0] if open_at else None), (1 if open_at else None), checked


def _checked_due_community(history: list[IsolationFact], day: date) -> str | None:
    open_at: tuple[str, date] | None = None
    for when, _key, community, action in history:
        d = day_of(when)
        if d > day:
            break
        if action == "start" and open_at is None:
            open_at = (community, d)
        elif action == "end" and open_at is not None:
            open_at = None
        elif action == "check" and open_at is not None and open_at[1] < d == day:
            return open_at[0]
    return None


def _figures(
    unit: str,
    day: date,
    flows: dict[tuple[str, date], dict[str, int]],
    stocks: _Stocks,
    registry: Registry,
) -> Figures:
    out: Figures = dict(flows.get((unit, day), {}))
    for cls in (C.SUSPECTED, C.CONFIRMED, C.ASYMPTOMATIC, C.CLOSE_CONTACT):
        out[f"current_{cls.value}"] = stocks.current[cls][unit]
    cumulative = stocks.firsts_until_day[C.CONFIRMED][unit]
    out["cumulative_confirmed"] = cumulative
    out["cumulative_recovered"] = stocks.firsts_until_day[C.RECOVERED][unit]
    out["cumulative_deceased"] = stocks.firsts_until_day[C.DECEASED][unit]
    last = stocks.last_confirmed.get(unit)
    out["days_since_last_new_confirmed"] = (day - last).days if last else None
    in_window = stocks.confirmed_in_window[unit]
    # The national rule of 2020 (the default): the generated cases name no compound or
    # building, so there is never a cluster and the level is never high.
    out["risk_level"] = "low" if in_window == 0 or cumulative == 0 else "medium"
    out["in_isolation"] = stocks.in_isolation[unit]
    missed = stocks.isolated_yesterday[unit] - stocks.checked[unit]
    out["isolation_checks_missed"] = max(0, missed)
    expected = len(registry.communities_under(unit))
    out["reports_missing"] = expected - int(out.get("reports_received", 0))  # type: ignore[call-overload]
    return out


def compare(
    actual: dict[tuple[str, date], Figures], expected: dict[tuple[str, date], Figures]
) -> list[str]:
    """Differences (empty when exact); metrics missing on one side count as 0."""
    problems = []
    for key, want in expected.items():
        got = actual[key]
        for metric, value in want.items():
            have = got.get(metric, 0 if value is not None else None)
            if (have or 0) != (value or 0) and not (value is None and have is None):
                problems.append(f"{key[0]} {key[1]} {metric}: got {have}, want {value}")
    return problems
