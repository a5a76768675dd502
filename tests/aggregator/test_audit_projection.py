"""The audit trail's projection on SQLite and PostgreSQL: each record stored once however
often it is delivered or by however many partitions sharing the database; pages cover
every row once; rejected events counted per community, day and reason, through an index
of the rejected rows alone (migration 0016: rows stored before it are counted after it)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nats
import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from zhibao_aggregator.audit_feed import AuditFeed
from zhibao_aggregator.domain.audit_rows import trail_rows
from zhibao_aggregator.domain.calendar import Calendar
from zhibao_aggregator.migrate import migrate
from zhibao_aggregator.storage.audit import (
    RejectedCount,
    TrailQuery,
    read_trail,
    rejected_events,
    rejected_query,
)
from zhibao_aggregator.storage.audit_tables import audit_trail
from zhibao_intake.settings import IntakeSettings
from zhibao_shared.audit import AuditTrail
from zhibao_shared.broker import audit_stream_config, ensure_stream, make_broker, stop_broker
from zhibao_shared.db import run_migrations
from zhibao_shared.events import MAX_ID_LENGTH, MAX_SOURCE_LENGTH
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.stream_feed import FeedSpec
from zhibao_shared.subjects import AUDIT_ALL, AUDIT_STREAM
from zhibao_shared.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
A, B = "640106001001", "640106002001"
DAY_1, DAY_2 = date(2026, 11, 30), date(2026, 12, 1)
CALENDAR = Calendar.named("Asia/Shanghai")


def _at(day: date, hour: int) -> str:
    """A moment of a day in the district's time zone, as intake writes it (UTC)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE).astimezone(UTC).isoformat()


def _event(n: int, community: str, status: str, code: str | None = None) -> dict[str, Any]:
    line = {"status": status, "id": f"ev-{n}", "source": f"/{community}/gate"}
    line |= {"subject": community, "type": "zhibao.screening.v1"}
    line |= {"time": _at(DAY_1, 7)}
    return line | ({"code": code} if code else {})


def _submission(at: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A record of intake's shape: who, when, and a line per event."""
    return {
        "at": at,
        "channel": "http",
        "remote": "10.0.0.7",
        "token": "t1",
        "token_name": "gate 3",
        "person": None,
        "status": 207,
        "events": events,
    }


SUBMISSIONS = [
    _submission(
        _at(DAY_1, 9),
        [
            _event(1, A, "accepted"),
            _event(2, A, "rejected", "invalid"),
            _event(3, B, "rejected", "invalid"),
        ],
    ),
    _submission(_at(DAY_1, 23), [_event(4, A, "rejected", "invalid")]),
    _submission(
        _at(DAY_2, 0), [_event(5, A, "rejected", "unknown_unit"), _event(6, B, "duplicate")]
    ),
]
TALLY = {
    "at": _at(DAY_1, 10),
    "from": _at(DAY_1, 9),
    "channel": "http",
    "remote": "10.0.0.9",
    "token": None,
    "token_name": None,
    "status": 401,
    "reason": "no token",
    "count": 40,
}


async def _publish_trail(
    url: str,
    data_dir: Path,
    tokens: TokenStore,
    records: list[dict[str, Any]] | None = None,
) -> None:
    """Intake's records (by default SUBMISSIONS and TALLY) and an alerts action,
    appended as the services append them."""
    settings = IntakeSettings(nats_url=url, data_dir=data_dir)
    broker = make_broker(settings, name="audit-test")
    await broker.connect()
    try:
        await ensure_stream(broker.connection.jetstream(), audit_stream_config(settings))
        intake = AuditTrail(broker, 5.0, "intake")
        for record in [*SUBMISSIONS, TALLY] if records is None else records:
            intake.append(record)
        assert await intake.flush()
        token, _secret = tokens.create(scopes=[A[:9]], role=Role.OPERATE, name="on call")
        alerts = AuditTrail(broker, 5.0, "alerts")
        alerts.record("alert.acknowledged", token, unit=A, target="7")
        assert await alerts.flush()
    finally:
        await stop_broker(broker)


async def _project(url: str, engine: AsyncEngine, tokens: TokenStore, durable: str) -> None:
    """One aggregator partition's projection, run until it has read everything."""
    client = await nats.connect(url)
    try:
        spec = FeedSpec("aggregator", AUDIT_STREAM, durable, (AUDIT_ALL,))
        feed = AuditFeed(client.jetstream(), spec, engine, Calendar(ZONE), tokens)
        await feed.start()
        await feed.run_until_caught_up()
        await feed.copy_tokens()
        await feed.copy_tokens()
    finally:
        await client.close()


async def _event_rows(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine, event: dict[str, Any]
) -> list[dict[str, Any]]:
    """The trail's event rows (community A's) after intake recorded one submission of
    ``event`` at 09:00 of DAY_1 and the projection read it."""
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(
            nats_server.url, tmp_path, tokens, [_submission(_at(DAY_1, 9), [event])]
        )
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        rows, _ = await read_trail(conn, TrailQuery(scopes=(A,)), None, 100)
    return [r for r in rows if r["kind"] == "event"]


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(audit_trail)) or 0)


async def test_partitions_and_redeliveries_store_each_record_once(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine
) -> None:
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens)
        made, _ = tokens.create(scopes=[A, B], role=Role.REPORT, name="two gates")
        assert tokens.revoke(made.id)
        await _project(nats_server.url, engine, tokens, "aggregator-640106-audit")
        # 6 event lines + 1 tally + 1 action; tokens: on call (1 scope) and two gates
        # (2 scopes) created, two gates revoked (2 scopes)
        expected = 6 + 1 + 1 + 1 + 2 + 2
        assert await _rows(engine) == expected
        await _project(nats_server.url, engine, tokens, "aggregator-640104-audit")
        await _project(nats_server.url, engine, tokens, "aggregator-640106-audit-again")
        assert await _rows(engine) == expected

        async with engine.connect() as conn:
            street_a, _ = await read_trail(conn, TrailQuery(scopes=(A[:9],)), None, 100)
            everything, _ = await read_trail(conn, TrailQuery(scopes=("6401",)), None, 100)
            pages: list[dict[str, Any]] = []
            after: str | None = None
            while True:
                page, after = await read_trail(conn, TrailQuery(scopes=("6401",)), after, 2)
                pages += page
                if after is None:
                    break
    finally:
        tokens.close()
    assert {r["unit"] for r in street_a} == {A, A[:9]}, "street A sees its units only"
    assert len(everything) == expected - 1, "the tally has no unit: no scoped reader sees it"
    assert pages == everything
    assert [r["at"] for r in everything] == sorted((r["at"] for r in everything), reverse=True)
    revoked = [r for r in everything if r["type"] == "token.revoked"]
    assert {r["unit"] for r in revoked} == {A, B}
    assert {r["target"] for r in revoked} == {made.id}


async def test_rejected_events_per_community_day_and_reason(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine
) -> None:
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens)
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
        await _project(nats_server.url, engine, tokens, "aggregator-audit-again")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        district = await rejected_events(conn, "640106", DAY_1, DAY_2)
        street_a_day_1 = await rejected_events(conn, A[:9], DAY_1, DAY_1)
        nothing = await rejected_events(conn, "640106", DAY_2 + timedelta(days=1), DAY_2)
    assert district == [
        RejectedCount(A, DAY_1, "invalid", 2),
        RejectedCount(A, DAY_2, "unknown_unit", 1),
        RejectedCount(B, DAY_1, "invalid", 1),
    ]
    assert street_a_day_1 == [RejectedCount(A, DAY_1, "invalid", 2)]
    assert nothing == []


@pytest.mark.parametrize("code", ["forbidden", "invalid"])
async def test_an_event_naming_a_unit_its_token_does_not_cover_is_the_reporter_s(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine, code: str
) -> None:
    """A's token names B (refused ``forbidden``, or ``invalid``: intake validates before
    it checks the scope): B's scorecard and trail are not A's to fill. The refusals are
    A's, the unit it named kept as a detail."""
    forged = _submission(_at(DAY_1, 9), [_event(n, B, "rejected", code) for n in range(3)])
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens, [forged | {"scopes": [A]}])
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        of_b = await rejected_events(conn, B, DAY_1, DAY_1)
        of_a = await rejected_events(conn, A, DAY_1, DAY_1)
        b_trail, _ = await read_trail(conn, TrailQuery((B,)), None, 10)
        details = (
            await conn.execute(
                select(audit_trail.c.detail).where(
                    audit_trail.c.unit == A, audit_trail.c.kind == "event"
                )
            )
        ).scalars()
        claimed = [json.loads(d) for d in details]
    assert of_b == []
    assert of_a == [RejectedCount(A, DAY_1, code, 3)]
    assert [row for row in b_trail if row["kind"] == "event"] == []
    assert claimed == [{"claimed_unit": B}] * 3


async def test_an_accepted_event_s_longest_id_and_source_are_kept_whole(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine
) -> None:
    source = "/" + "s" * (MAX_SOURCE_LENGTH - 1)
    event = _event(7, A, "accepted") | {"id": "i" * MAX_ID_LENGTH, "source": source}
    stored = await _event_rows(nats_server, tmp_path, engine, event)
    assert [(r["event_id"], r["event_source"]) for r in stored] == [(event["id"], source)]


async def test_an_event_s_time_in_its_own_offset_is_shown_as_the_same_moment(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine
) -> None:
    """A community system may state times in local time (+08:00); the trail shows that
    moment in UTC, not its local clock reading as if it were UTC."""
    local = datetime(2026, 11, 30, 7, 30, tzinfo=ZONE)
    event = _event(8, A, "accepted") | {"time": local.isoformat()}
    (stored,) = await _event_rows(nats_server, tmp_path, engine, event)
    assert stored["event_time"] == "2026-11-29T23:30:00+00:00"
    assert stored["at"] == _at(DAY_1, 9)


#: The revision before the rejected rows had an index of their own.
BEFORE_REJECTED_INDEX = "0015_counters_by_unit_day"
REJECTED_INDEX = "ix_audit_trail_rejected"


def _definition(sync: Connection) -> str:
    """The index's definition as the database states it."""
    if sync.dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = :name"
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    return str(sync.execute(text(query), {"name": REJECTED_INDEX}).scalar_one()).upper()


def _rejection_count_plan(sync: Connection) -> str:
    """The plan of a rejection count (PostgreSQL told to avoid scanning the table whenever
    an index can serve: the test table is tiny)."""
    if sync.dialect.name == "sqlite":
        explain = "EXPLAIN QUERY PLAN "
    else:
        sync.execute(text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN "
    query = rejected_query("640106", DAY_1, DAY_2)
    compiled = query.compile(sync, compile_kwargs={"literal_binds": True})
    rows = sync.execute(text(explain + str(compiled)))
    return " ".join(str(part) for row in rows for part in row)


async def test_rejections_stored_before_the_upgrade_are_counted_through_the_new_index(
    nats_server: NatsServer, tmp_path: Path, engine: AsyncEngine, database: str
) -> None:
    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE_REJECTED_INDEX)
    tokens = TokenStore.in_data_dir(tmp_path / "tokens")
    try:
        await _publish_trail(nats_server.url, tmp_path, tokens)
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
        async with engine.connect() as conn:
            definition = await conn.run_sync(_definition)
        assert "WHERE" not in definition and "OUTCOME" in definition

        await migrate(database)
        later = _submission(
            _at(DAY_2, 9), [_event(7, B, "rejected", "invalid"), _event(8, A, "accepted")]
        )
        await _publish_trail(nats_server.url, tmp_path, tokens, [later])
        await _project(nats_server.url, engine, tokens, "aggregator-audit")
    finally:
        tokens.close()
    async with engine.connect() as conn:
        definition = await conn.run_sync(_definition)
        plan = await conn.run_sync(_rejection_count_plan)
        rejected_rows, _ = await read_trail(
            conn, TrailQuery(("6401",), outcome="rejected"), None, 50
        )
        counted = await rejected_events(conn, "640106", DAY_1, DAY_2)
        nothing = await rejected_events(conn, "640106", DAY_2 + timedelta(days=1), DAY_2)
    assert "WHERE" in definition and "'REJECTED'" in definition, definition
    assert REJECTED_INDEX in plan, plan
    assert counted == [
        RejectedCount(A, DAY_1, "invalid", 2),
        RejectedCount(A, DAY_2, "unknown_unit", 1),
        RejectedCount(B, DAY_1, "invalid", 1),
        RejectedCount(B, DAY_2, "invalid", 1),
    ]
    assert nothing == []
    assert sorted(r["event_id"] for r in rejected_rows) == ["ev-2", "ev-3", "ev-4", "ev-5", "ev-7"]

    await run_migrations(database, "zhibao_aggregator", downgrade_to=BEFORE_REJECTED_INDEX)
    async with engine.connect() as conn:
        assert "WHERE" not in await conn.run_sync(_definition)


def test_a_refused_submission_s_row_says_why() -> None:
    """Intake's record of a submission refused before admission (the token's storage
    budget spent, its rate limit) carries the reason: its row's code; the row is filed
    under the token's units, where their operators read it."""
    record = {"at": _at(DAY_1, 9), "channel": "http", "token": "t1", "status": 429}
    record |= {"scopes": ["640106001001", "640106001002"]}
    rows = trail_rows(7, json.dumps(record | {"reason": "storage_budget"}).encode(), CALENDAR)
    older = trail_rows(8, json.dumps(record).encode(), CALENDAR)  # before reasons were kept
    assert [(r["outcome"], r["status"], r["code"], r["unit"]) for r in rows + older] == [
        ("refused", 429, "storage_budget", "640106001"),
        ("refused", 429, None, "640106001"),
    ]


def test_a_token_s_tally_of_refusals_is_filed_under_its_units() -> None:
    """A window's count of a token's refusals (its storage budget spent) is the token's,
    listed to its units' operators; an unauthenticated tally has no unit."""
    tally = {"at": _at(DAY_1, 9), "from": _at(DAY_1, 8), "channel": "http", "status": 429}
    tally |= {"reason": "storage_budget", "count": 40}
    mine = tally | {"token": "t1", "scopes": ["640106001001"]}
    rows = trail_rows(9, json.dumps(mine).encode(), CALENDAR)
    rows += trail_rows(10, json.dumps(tally | {"token": None}).encode(), CALENDAR)
    assert [(r["kind"], r["token"], r["code"], r["unit"]) for r in rows] == [
        ("tally", "t1", "storage_budget", "640106001001"),
        ("tally", None, "storage_budget", None),
    ]
