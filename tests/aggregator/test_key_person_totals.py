"""The rollups' key-person counts come from running totals per unit and category: whatever
the order in which registrations, renewals and removals arrive (older ones late, some
twice), the totals at community, street, district, city and province equal the register
itself; a rebuild gives the same totals as live, and the migration that adds them fills
them from the register as it stands (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.harness import consume, publish_each
from tests.support.care_events import key_person, published
from zhibao_aggregator.bootstrap import reader, rebuild, rules
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.domain.care import registered_change, totals_change
from zhibao_aggregator.handler import ApplyBatch
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.care_tables import key_person_totals, key_persons
from zhibao_shared.care_events import KeyPersonAction, PublishedKeyPerson
from zhibao_shared.consumer import Delivery
from zhibao_shared.db import make_engine, run_migrations
from zhibao_shared.events import parse_published
from zhibao_shared.hierarchy import ancestors
from zhibao_shared.natsserver import NatsServer

#: Communities in two streets of one district, another district and a county.
COMMUNITIES = ("640106001001", "640106001002", "640106002001", "640104001001", "640121001001")
CATEGORIES = ("elderly_alone", "dialysis", "pregnant")
PIDS = tuple(f"{n:032x}" for n in range(1, 6))
#: Every unit above the communities, and a district without any key person.
UNITS = sorted({unit for c in COMMUNITIES for unit in ancestors(c)} | {"640105"})

Totals = Counter[tuple[str, str]]


def _actions(seed: int, count: int) -> list[PublishedKeyPerson]:
    """Registrations (renewals among them) and removals of a few persons, as published."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=4)
    out = []
    for n in range(count):
        pid = rng.choice(PIDS)
        document = key_person(
            rng.choice(COMMUNITIES),
            person={"ref": pid},
            category=rng.choice(CATEGORIES),
            action=rng.choice(("register", "register", "remove")),
            event_id=f"kp-{seed}-{n}",
            when=start + timedelta(minutes=rng.randrange(120)),  # ties: the identity decides
        )
        event = parse_published(json.dumps(published(document, pid)))
        assert isinstance(event, PublishedKeyPerson)
        out.append(event)
    return out


def _arrivals(events: Sequence[PublishedKeyPerson], seed: int) -> list[PublishedKeyPerson]:
    """``events`` shuffled (older actions arrive late), a tenth of them twice."""
    rng = random.Random(seed)
    out = [*events, *rng.sample(list(events), len(events) // 10)]
    rng.shuffle(out)
    return out


def _register_says(events: Sequence[PublishedKeyPerson]) -> Totals:
    """The persons per (unit, category) the latest action of each register row leaves."""
    latest: dict[tuple[str, str, str], PublishedKeyPerson] = {}
    for e in events:
        row = (e.subject, e.data.person.pid, e.data.category.value)
        if row not in latest or (e.time, e.dedup_key) > (latest[row].time, latest[row].dedup_key):
            latest[row] = e
    out: Totals = Counter()
    for (community, _pid, category), e in latest.items():
        if e.data.action is KeyPersonAction.REGISTER:
            for unit in ancestors(community):
                out[(unit, category)] += 1
    return out


async def _counted_in_register(engine: AsyncEngine) -> Totals:
    """The ``key_persons`` table's registered rows, counted under every unit."""
    k = key_persons.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(k.community, k.category, func.count())
            .where(k.registered.is_(True))
            .group_by(k.community, k.category)
        )
        out: Totals = Counter()
        for community, category, persons in rows.all():
            for unit in ancestors(community):
                out[(unit, category)] += int(persons)
    return out


async def _totals(engine: AsyncEngine) -> Totals:
    """The kept totals (rows that fell back to zero left out)."""
    t = key_person_totals.c
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.unit, t.category, t.value).where(t.value != 0))
        return Counter({(unit, category): int(value) for unit, category, value in rows.all()})


async def _figures(engine: AsyncEngine, settings: AggregatorSettings) -> dict[str, object]:
    """Every unit's rollup ``key_persons``, as the API gives it."""
    day = Calendar.named(settings.timezone).day(datetime.now(UTC))
    found = await reader(settings, engine).figures_of(UNITS, day)
    return {code: figures["key_persons"] for code, figures in found.items()}


def _as_figures(totals: Totals) -> dict[str, object]:
    return {
        code: {cat: n for (unit, cat), n in sorted(totals.items()) if unit == code and n}
        for code in UNITS
    }


async def _apply(engine: AsyncEngine, settings: AggregatorSettings, batch: list[Delivery]) -> None:
    await ApplyBatch(engine, rules(settings), lambda _changed: None)(batch)


def test_only_a_change_of_registered_state_moves_the_totals() -> None:
    assert [registered_change(b, a) for b, a in ((False, True), (True, False))] == [1, -1]
    assert [registered_change(b, a) for b, a in ((True, True), (False, False))] == [0, 0]
    change = totals_change({("640106001001", "dialysis"): 1, ("640106001002", "dialysis"): -1})
    assert change == {("640106001001", "dialysis"): 1, ("640106001002", "dialysis"): -1}


@pytest.mark.integration
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_totals_equal_the_register_at_every_level_whatever_the_arrival_order(
    engine: AsyncEngine, settings: AggregatorSettings, seed: int
) -> None:
    events = _actions(seed, 160)
    arrivals = _arrivals(events, seed)
    rng = random.Random(seed)
    seen: list[PublishedKeyPerson] = []
    batches, went_down, previous = 0, False, Counter[tuple[str, str]]()
    while len(seen) < len(arrivals):
        batch = arrivals[len(seen) : len(seen) + rng.randint(1, 20)]
        await _apply(
            engine, settings, [Delivery(e, "s", len(seen) + n, 1) for n, e in enumerate(batch)]
        )
        seen += batch
        batches += 1
        expected = _register_says(seen)
        went_down = went_down or any(expected[key] < n for key, n in previous.items())
        previous = expected
        assert await _totals(engine) == expected
        assert await _counted_in_register(engine) == expected
        if batches % 4 == 0 or len(seen) == len(arrivals):
            assert await _figures(engine, settings) == _as_figures(expected)
    assert went_down  # removals took persons off the register on the way


@pytest.mark.integration
async def test_a_rebuild_gives_the_totals_live_gave(
    nats_server: NatsServer, tmp_path: Path, database: str
) -> None:
    settings = AggregatorSettings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        aggregator_database_url=database,
        _env_file=None,
    )
    events = _actions(5, 200)
    arrivals = _arrivals(events, 5)
    await publish_each(nats_server.url, arrivals, settings)
    await publish_each(nats_server.url, arrivals[:20], settings, again=" again")  # stored twice
    await migrate(database)
    engine = make_engine(database)
    try:
        await consume(nats_server.url, engine, settings, batch_size=16)
        live = (await _totals(engine), await _figures(engine, settings))
        assert live[0] == _register_says(events) == await _counted_in_register(engine)
        await rebuild(settings, force=True)  # the same database: wiped, then replayed
        assert (await _totals(engine), await _figures(engine, settings)) == live
    finally:
        await engine.dispose()


@pytest.mark.integration
async def test_the_migration_fills_the_totals_from_the_register(
    engine: AsyncEngine, database: str, settings: AggregatorSettings
) -> None:
    events = _actions(8, 150)
    deliveries = [Delivery(e, "s", n, 1) for n, e in enumerate(_arrivals(events, 8))]
    for start in range(0, len(deliveries), 25):
        await _apply(engine, settings, deliveries[start : start + 25])
    expected = _register_says(events)
    before = await _figures(engine, settings)
    assert before == _as_figures(expected)
    # as the database stood at 0011: a register, no totals
    await run_migrations(database, "zhibao_aggregator", downgrade_to="0011_counter_totals")
    await migrate(database)
    assert await _totals(engine) == expected
    assert await _figures(engine, settings) == before


@pytest.mark.integration
async def test_two_instances_keep_the_totals_exact(
    nats_server: NatsServer, settings: AggregatorSettings, postgres_url: str
) -> None:
    events = _actions(13, 240)
    await publish_each(nats_server.url, _arrivals(events, 13), settings)
    await migrate(postgres_url)
    first, second = make_engine(postgres_url), make_engine(postgres_url)
    try:
        consumers = await asyncio.gather(
            consume(nats_server.url, first, settings, batch_size=4),
            consume(nats_server.url, second, settings, batch_size=4),
        )
        assert all(c.stats.batches > 5 for c in consumers), "both instances took part"
        assert sum(c.stats.dead_lettered for c in consumers) == 0
        assert await _totals(first) == _register_says(events) == await _counted_in_register(first)
    finally:
        await first.dispose()
        await second.dispose()
