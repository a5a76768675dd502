"""Corrections downstream: the rollups at every level follow a retraction or replacement,
exactly once and whatever the arrival order (real nats-server; SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.aggregator.generator import ZONE
from tests.aggregator.harness import consume, publish_each, read_all
from zhibao_aggregator.bootstrap import reader, rebuild
from zhibao_aggregator.domain.corrections import timed_key
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.settings import AggregatorSettings
from zhibao_aggregator.storage.tables import applied_events, held_corrections
from zhibao_shared.consumer import BatchHandler, Delivery
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.events import PUBLISHED_EVENT, STORED, PublishedCorrection, PublishedEvent
from zhibao_shared.natsserver import NatsServer

pytestmark = pytest.mark.integration

COMMUNITY = "640106001001"
UNITS = (COMMUNITY, "640106001", "640106", "6401")
DISTRICT = UNITS[2]
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
_ids = itertools.count(1)


@pytest.fixture
def live(settings: AggregatorSettings, nats_server: NatsServer) -> AggregatorSettings:
    """Settings pointing at the test's nats-server."""
    return settings.model_copy(update={"nats_url": nats_server.url})


def event(
    kind: str, data: dict[str, Any], when: datetime = NOW, level: str | None = None
) -> PublishedEvent:
    """A published event of COMMUNITY (received two minutes after ``when``), reported at
    ``level`` when given."""
    stamped = {"reporterlevel": level} if level else {}
    return PUBLISHED_EVENT.validate_python(
        stamped
        | {
            "specversion": "1.0",
            "id": f"e-{next(_ids)}",
            "source": f"/{COMMUNITY}/gate-1",
            "type": f"zhibao.{kind}.v1",
            "subject": COMMUNITY,
            "time": when,
            "reporter": "tok-test",
            "receivedat": when + timedelta(minutes=2),
            "data": data,
        },
        context=STORED,  # corrections of NOW's events are made up to hours later
    )


def screening(temperature: float, when: datetime = NOW) -> PublishedEvent:
    """A gate screening."""
    return event("screening", {"temperature_c": temperature, "site": "gate"}, when)


def fix(
    original: PublishedEvent,
    data: dict[str, Any] | None = None,
    after: timedelta = timedelta(hours=1),
    level: str | None = None,
) -> PublishedEvent:
    """A correction of ``original`` made ``after`` it: a retraction, or with ``data`` a
    replacement."""
    body: dict[str, Any] = {
        "corrects": {"source": original.source, "id": original.id},
        "action": "retract" if data is None else "replace",
        "reason": "entered in error",
    }
    if data is not None:
        body |= {"type": original.type.value, "data": data}
    return event("correction", body, original.time + after, level)


def day(when: datetime = NOW) -> date:
    """The local day of ``when``."""
    return when.astimezone(ZONE).date()


async def figures(engine: AsyncEngine, settings: AggregatorSettings, on: date) -> dict[str, Any]:
    """unit → figures on a day, for the community and every level above it."""
    read = reader(settings, engine)
    return {unit: await read.figures(unit, on) for unit in UNITS}


async def run(
    engine: AsyncEngine, settings: AggregatorSettings, events: Sequence[PublishedEvent]
) -> None:
    """Publish ``events`` in this order and consume them all."""
    await publish_each(settings.nats_url, events, settings)
    await consume(settings.nats_url, engine, settings)


def column(found: dict[str, Any], metric: str) -> list[Any]:
    """A metric at community, street, district and city."""
    return [found[unit][metric] for unit in UNITS]


async def test_retracting_a_past_fever_changes_every_level(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    past = NOW - timedelta(days=3)
    fever, normal = screening(38.5, past), screening(36.6, past)
    await run(engine, live, [fever, normal])
    before = await figures(engine, live, day(past))
    assert column(before, "fevers") == [1, 1, 1, 1]
    assert column(before, "screenings") == [2, 2, 2, 2]
    await run(engine, live, [fix(fever)])
    after = await figures(engine, live, day(past))
    assert column(after, "fevers") == [0, 0, 0, 0]
    assert column(after, "screenings") == [1, 1, 1, 1]
    assert column(after, "events") == [1, 1, 1, 1]
    assert column(after, "screenings_gate") == [1, 1, 1, 1]
    assert column(after, "corrections") == [1, 1, 1, 1]


async def test_a_replaced_temperature_is_judged_again(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    cold, hot = screening(36.5), screening(38.9)
    await run(engine, live, [cold, hot])
    assert column(await figures(engine, live, day()), "fevers") == [1, 1, 1, 1]
    household = {"temperature_c": 38.2, "site": "household", "travel_from_risk_area": True}
    await run(
        engine,
        live,
        [fix(cold, household), fix(hot, {"temperature_c": 36.9, "site": "gate"})],
    )
    found = await figures(engine, live, day())
    assert column(found, "fevers") == [1, 1, 1, 1]
    assert column(found, "screenings") == [2, 2, 2, 2]
    assert column(found, "screenings_gate") == [1, 1, 1, 1]
    assert column(found, "screenings_household") == [1, 1, 1, 1]
    assert column(found, "travel_flagged") == [1, 1, 1, 1]
    assert column(found, "corrections") == [2, 2, 2, 2]


async def test_a_correction_before_its_event_is_held_until_it_arrives(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    fever = screening(39.1)
    await run(engine, live, [fix(fever)])
    held = await figures(engine, live, day())
    assert column(held, "events") == [0, 0, 0, 0]
    assert column(held, "corrections") == [0, 0, 0, 0]
    await run(engine, live, [fever, screening(36.4)])
    found = await figures(engine, live, day())
    assert column(found, "fevers") == [0, 0, 0, 0]
    assert column(found, "screenings") == [1, 1, 1, 1]
    assert column(found, "corrections") == [1, 1, 1, 1]


async def test_the_same_correction_twice_counts_once(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    fever = screening(38.0)
    correction = fix(fever, {"temperature_c": 36.0, "site": "gate"})
    await run(engine, live, [fever, correction])
    # Stored again (an intake restart forgot it): the stream holds it twice.
    await publish_each(live.nats_url, [correction], live, again=" again")
    await consume(live.nats_url, engine, live)
    found = await figures(engine, live, day())
    assert column(found, "corrections") == [1, 1, 1, 1]
    assert column(found, "fevers") == [0, 0, 0, 0]
    assert column(found, "screenings") == [1, 1, 1, 1]


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
async def test_the_later_correction_decides_whatever_the_arrival_order(
    engine: AsyncEngine, live: AggregatorSettings, arrival: str
) -> None:
    fever, other = screening(38.4), screening(38.6)
    retract = fix(fever, after=timedelta(hours=1))
    restore = fix(fever, {"temperature_c": 39.2, "site": "gate"}, after=timedelta(hours=2))
    replace = fix(other, {"temperature_c": 36.2, "site": "gate"}, after=timedelta(hours=1))
    withdraw = fix(other, after=timedelta(hours=2))
    fixes = [retract, restore, replace, withdraw]
    await run(engine, live, [fever, other])
    for one in fixes if arrival == "in order" else fixes[::-1]:
        await run(engine, live, [one])  # a batch each: the order is the stream's
    found = await figures(engine, live, day())
    # fever: retracted, then restored by a replacement; other: replaced, then retracted
    assert column(found, "fevers") == [1, 1, 1, 1]
    assert column(found, "screenings") == [1, 1, 1, 1]
    assert column(found, "events") == [1, 1, 1, 1]
    assert column(found, "corrections") == [4, 4, 4, 4]


async def test_retracting_a_case_and_an_isolation_takes_the_person_back(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    person = {"pid": "ab" * 16}
    confirmed = event("case", {"person": person, "classification": "confirmed"})
    other = {"pid": "cd" * 16}
    suspected = event("case", {"person": other, "classification": "suspected"})
    isolation = event("isolation", {"person": person, "action": "start", "kind": "home"})
    await run(engine, live, [confirmed, suspected, isolation])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]
    assert column(found, "current_suspected") == [1, 1, 1, 1]
    assert column(found, "in_isolation") == [1, 1, 1, 1]
    reclassified = fix(suspected, {"person": other, "classification": "confirmed"})
    await run(engine, live, [fix(confirmed), fix(isolation), reclassified])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]  # the other person now
    assert column(found, "current_confirmed") == [1, 1, 1, 1]
    assert column(found, "cumulative_confirmed") == [1, 1, 1, 1]
    assert column(found, "new_suspected") == [0, 0, 0, 0]
    assert column(found, "current_suspected") == [0, 0, 0, 0]
    assert column(found, "in_isolation") == [0, 0, 0, 0]
    assert column(found, "isolation_started") == [0, 0, 0, 0]
    assert column(found, "corrections") == [3, 3, 3, 3]


async def test_a_corrected_daily_report_moves_the_reporting_figures(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    yesterday = day() - timedelta(days=1)
    zero = event("daily_report", {"date": yesterday.isoformat(), "zero": True})
    await run(engine, live, [zero])
    found = await figures(engine, live, yesterday)
    assert column(found, "reports_received") == [1, 1, 1, 1]
    assert column(found, "reports_zero") == [1, 1, 1, 1]
    await run(engine, live, [fix(zero, {"date": yesterday.isoformat(), "zero": False})])
    found = await figures(engine, live, yesterday)
    assert column(found, "reports_received") == [1, 1, 1, 1]
    assert column(found, "reports_zero") == [0, 0, 0, 0]
    await run(engine, live, [fix(zero, after=timedelta(hours=3))])
    found = await figures(engine, live, yesterday)
    assert column(found, "reports_received") == [0, 0, 0, 0]


async def test_a_correction_of_another_type_is_ignored(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    fever = screening(38.8)
    wrong = event(
        "correction",
        {
            "corrects": {"source": fever.source, "id": fever.id},
            "action": "replace",
            "reason": "meant a case",
            "type": "zhibao.case.v1",
            "data": {"person": {"pid": "ef" * 16}, "classification": "confirmed"},
        },
        NOW + timedelta(hours=1),
    )
    await run(engine, live, [fever, wrong])
    found = await figures(engine, live, day())
    assert column(found, "fevers") == [1, 1, 1, 1]
    assert column(found, "new_confirmed") == [0, 0, 0, 0]
    assert column(found, "corrections") == [0, 0, 0, 0]


@pytest.mark.parametrize("retraction_first", [False, True], ids=["after", "before"])
async def test_a_community_cannot_retract_a_case_its_district_reported(
    engine: AsyncEngine, live: AggregatorSettings, retraction_first: bool
) -> None:
    """Concealment: a community's token retracting (even in advance) a confirmed case the
    district's CDC reported is ignored; the district itself may retract it."""
    person = {"pid": "ab" * 16}
    case = event("case", {"person": person, "classification": "confirmed"}, level=DISTRICT)
    own = fix(case, level=COMMUNITY)
    ignored_before = _ignored("below_reporter")
    await run(engine, live, [own, case] if retraction_first else [case, own])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]
    assert column(found, "corrections") == [0, 0, 0, 0]
    assert _ignored("below_reporter") == ignored_before + 1
    await run(engine, live, [fix(case, after=timedelta(hours=2), level=DISTRICT)])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [0, 0, 0, 0]
    assert column(found, "corrections") == [1, 1, 1, 1]


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
async def test_a_community_cannot_undo_its_districts_correction_of_its_case(
    engine: AsyncEngine, live: AggregatorSettings, arrival: str
) -> None:
    """Concealment: the community reports a suspected case, the district's CDC confirms it
    by a replacement, the community retracts its report later: the CDC's word stands,
    whatever order the corrections arrive in; the community's is counted, not deciding."""
    person = {"pid": "ef" * 16}
    case = event("case", {"person": person, "classification": "suspected"}, level=COMMUNITY)
    confirmed = {"person": person, "classification": "confirmed"}
    cdc = fix(case, confirmed, after=timedelta(hours=1), level=DISTRICT)
    own = fix(case, after=timedelta(hours=2), level=COMMUNITY)
    await run(engine, live, [case])
    for one in [cdc, own] if arrival == "in order" else [own, cdc]:
        await run(engine, live, [one])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]
    assert column(found, "new_suspected") == [0, 0, 0, 0]
    assert column(found, "corrections") == [2, 2, 2, 2]


#: The revision before corrected events' order keys led with their decider's rank.
BEFORE_RANKS = "0016_rejected_rows_indexed"


async def _decision(engine: AsyncEngine, case: PublishedEvent) -> tuple[str, str | None]:
    """The (corrected_by, ranked_by) stored for ``case``."""
    table = applied_events.c
    async with engine.connect() as conn:
        query = select(table.corrected_by, table.ranked_by).where(table.dedup_key == case.dedup_key)
        corrected_by, ranked_by = (await conn.execute(query)).one()
        return corrected_by, ranked_by


async def test_corrections_decided_before_the_upgrade_rank_as_a_community_s(
    engine: AsyncEngine, live: AggregatorSettings, database: str
) -> None:
    """A database corrected by a version that ordered by time alone keeps the keys it
    reads; after the upgrade, a district's correction decides over the community's
    stored one, made later."""
    person = {"pid": "12" * 16}
    case = event("case", {"person": person, "classification": "suspected"}, level=COMMUNITY)
    own = fix(case, after=timedelta(hours=2), level=COMMUNITY)
    await run(engine, live, [case, own])
    assert isinstance(own, PublishedCorrection)
    assert await _decision(engine, case) == (timed_key(own), f"00 {timed_key(own)}")
    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE_RANKS)
    await migrate(database)
    assert await _decision(engine, case) == (timed_key(own), None)
    confirmed = {"person": person, "classification": "confirmed"}
    await run(engine, live, [fix(case, confirmed, after=timedelta(hours=1), level=DISTRICT)])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]


async def test_a_rank_kept_for_another_decider_is_not_believed(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    """A version before ranks (rolled back, or during a rolling update) decides an event
    by writing ``corrected_by`` alone, leaving the district's rank behind: the rank is
    not taken for its decider's, so the district's next correction still decides."""
    person = {"pid": "34" * 16}
    confirmed = {"person": person, "classification": "confirmed"}
    case = event("case", {"person": person, "classification": "suspected"}, level=COMMUNITY)
    cdc = fix(case, confirmed, after=timedelta(hours=1), level=DISTRICT)
    await run(engine, live, [case, cdc])
    own = fix(case, {**confirmed, "classification": "suspected"}, timedelta(hours=3), COMMUNITY)
    assert isinstance(own, PublishedCorrection)
    async with engine.begin() as conn:  # as the earlier version applies the community's
        await conn.execute(
            update(applied_events)
            .where(applied_events.c.dedup_key == case.dedup_key)
            .values(corrected_by=timed_key(own))
        )
    later = fix(case, confirmed, after=timedelta(hours=2), level=DISTRICT)
    await run(engine, live, [later])
    assert isinstance(later, PublishedCorrection)
    assert await _decision(engine, case) == (timed_key(later), f"06 {timed_key(later)}")


async def test_a_case_is_kept_from_unstamped_corrections_and_screenings_from_none(
    engine: AsyncEngine, live: AggregatorSettings
) -> None:
    """A retraction without a level (held since before levels were stamped, or passed by
    an older intake) cannot take back a case a district reported; the level rule is the
    cases': a community corrects the fevers its street-scoped gate token reported."""
    person = {"pid": "cd" * 16}
    case = event("case", {"person": person, "classification": "confirmed"}, level=DISTRICT)
    fever = event("screening", {"temperature_c": 38.9, "site": "gate"}, level=UNITS[1])
    await run(engine, live, [fix(case), case, fever, fix(fever, level=COMMUNITY)])
    found = await figures(engine, live, day())
    assert column(found, "new_confirmed") == [1, 1, 1, 1]
    assert column(found, "fevers") == [0, 0, 0, 0]
    assert column(found, "corrections") == [1, 1, 1, 1]


@pytest.mark.parametrize("retraction_first", [False, True], ids=["after", "before"])
async def test_a_retraction_of_a_correction_is_ignored_and_its_batch_goes_through(
    engine: AsyncEngine, live: AggregatorSettings, retraction_first: bool
) -> None:
    """Corrections are not correctable (README): a retraction naming a correction is
    counted as ignored, whether it arrives after the correction or before it (held, then
    ignored when the correction arrives); its batch is applied, not failed until
    dead-lettered."""
    fever = screening(38.8)
    first = fix(fever, {"temperature_c": 36.0, "site": "gate"})
    second = fix(first, after=timedelta(hours=2))
    events = [second, fever, first] if retraction_first else [fever, first, second]
    failures: list[Exception] = []

    def watched(handler: BatchHandler) -> BatchHandler:
        async def handle(batch: Sequence[Delivery]) -> None:
            try:
                await handler(batch)
            except Exception as exc:
                failures.append(exc)
                raise

        return handle

    before = _ignored("not_correctable")
    await publish_each(live.nats_url, events, live)
    await consume(live.nats_url, engine, live, wrap=watched)
    assert failures == []
    assert _ignored("not_correctable") == before + 1
    async with engine.connect() as conn:
        held = (await conn.execute(select(func.count()).select_from(held_corrections))).scalar()
    assert held == 0, "nothing left waiting for an event that is already here"
    found = await figures(engine, live, day())
    assert column(found, "fevers") == [0, 0, 0, 0], "the first correction stands"
    assert column(found, "corrections") == [1, 1, 1, 1]


def _ignored(reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "zhibao_aggregator_corrections_ignored_total", {"reason": reason}
    )
    return sample or 0.0


async def test_a_rebuild_gives_the_live_result(
    engine: AsyncEngine, live: AggregatorSettings, tmp_path: Path
) -> None:
    past = NOW - timedelta(days=2)
    person = {"pid": "12" * 16}
    fever, cold = screening(38.3, past), screening(36.1, past)
    case = event("case", {"person": person, "classification": "suspected"}, past)
    report = event("daily_report", {"date": day(past).isoformat(), "zero": True}, past)
    late_fix = fix(cold, {"temperature_c": 38.0, "site": "gate"}, after=timedelta(hours=5))
    events = [
        fix(fever),  # held
        fever,
        cold,
        late_fix,
        fix(cold, after=timedelta(hours=2)),  # earlier than late_fix: counted, decides nothing
        case,
        fix(case, {"person": person, "classification": "confirmed"}),
        report,
        fix(report, {"date": day(past).isoformat(), "zero": False}),
    ]
    for one in events:  # live: a batch each; the rebuild applies them in one
        await run(engine, live, [one])
    rebuilt_url = sqlite_url(tmp_path / "rebuilt", "aggregator")
    rebuilt_settings = live.model_copy(update={"aggregator_database_url": rebuilt_url})
    assert await rebuild(rebuilt_settings) == len(events)
    rebuilt = make_engine(rebuilt_url)
    try:
        days = [day(past), day()]
        before = await read_all(engine, live, days)
        after = await read_all(rebuilt, rebuilt_settings, days)
    finally:
        await rebuilt.dispose()
    assert after == before
    found = before[(COMMUNITY, day(past))]
    assert (found["fevers"], found["screenings"], found["corrections"]) == (1, 1, 5)
    assert (found["new_confirmed"], found["current_suspected"]) == (1, 0)
    assert (found["reports_received"], found["reports_zero"]) == (1, 0)
