"""The event records' person and day indexes hold only the records that count (migration
0015), on SQLite and PostgreSQL: records written before the upgrade are still found by
the corrections that need them, and the lookups by person and by day use the indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.alerts.conftest import Clock, correction, published
from tests.alerts.test_corrections import REASON, db_url, fevers_counted, three_fevers
from tests.alerts.test_lifecycle import World
from tests.alerts.test_time_rules import at_shanghai
from tests.support.webhook import Receiver
from zhibao_alerts.correction_store import counted_of_days, counted_of_persons
from zhibao_alerts.tables import COUNTING, daily_reports, event_records
from zhibao_shared.db import make_engine, run_migrations

__all__ = ["db_url"]

BEFORE = "0014"
INDEXES = ("ix_event_records_community_day", "ix_event_records_pid")


#: Nullable columns later revisions add, which this version's code writes: added by hand
#: to the 0014 schema so that the records can be written before the upgrade (the later
#: revisions add a column only where it is missing).
LATER_COLUMNS = (
    ("event_records", "level", "VARCHAR(12)"),
    ("held_corrections", "level", "VARCHAR(12)"),
    ("isolations", "status_key", "VARCHAR(400)"),
    ("event_records", "ranked_by", "VARCHAR(410)"),
)


@pytest.fixture
async def old_db(db_url: str) -> AsyncIterator[AsyncEngine]:
    """The alerts schema as revision 0014 left it (every record in both indexes)."""
    await run_migrations(db_url, "zhibao_alerts")
    await run_migrations(db_url, "zhibao_alerts", downgrade_to=BEFORE)
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        for table, column, kind in LATER_COLUMNS:
            await conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
    try:
        yield engine
    finally:
        await engine.dispose()


def _conditions(sync: Connection) -> dict[str, str | None]:
    """Each index's condition as the database states it (None: every row)."""
    if sync.dialect.name == "sqlite":
        found = sync.execute(
            text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'event_records'")
        )
    else:
        found = sync.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'event_records'")
        )
    return {name: _condition(sql) for name, sql in found if name in INDEXES}


def _condition(definition: str | None) -> str | None:
    """What follows WHERE in an index's definition (None: it has no condition)."""
    if definition is None or " WHERE " not in definition.upper():
        return None
    return definition.upper().split(" WHERE ", 1)[1]


def _plans(sync: Connection, pid: str, community: str) -> list[str]:
    """The plans of the lookups by person and by day (PostgreSQL told to avoid scanning
    the table whenever an index can serve: the test tables are tiny)."""
    by_person = select(event_records).where(event_records.c.pid.in_([pid]), COUNTING)
    by_day = select(event_records).where(
        event_records.c.type == "zhibao.daily_report.v1",
        event_records.c.community.in_([community]),
        COUNTING,
    )
    if sync.dialect.name == "sqlite":
        explain = "EXPLAIN QUERY PLAN "
    else:
        sync.execute(text("SET LOCAL enable_seqscan = off"))
        explain = "EXPLAIN "
    plans = []
    for query in (by_person, by_day):
        compiled = query.compile(sync, compile_kwargs={"literal_binds": True})
        rows = sync.execute(text(explain + str(compiled))).all()
        plans.append(" ".join(str(part) for row in rows for part in row))
    return plans


async def test_records_from_before_the_upgrade_are_still_corrected_through_the_new_indexes(
    old_db: AsyncEngine, db_url: str, clock: Clock, webhook: Receiver
) -> None:
    world = World(old_db, clock, webhook)
    fevers = three_fevers(clock.now)
    today = at_shanghai(0, 12, clock).date()
    report = published("daily_report", {"date": str(today), "zero": True})
    normal = published("screening", {"temperature_c": 36.5, "site": "household"}, when=clock.now)
    await world.send(*fevers, report, normal)
    async with old_db.connect() as conn:
        assert set((await _conditions_of(conn)).values()) == {None}

    await run_migrations(db_url, "zhibao_alerts")
    async with old_db.connect() as conn:
        conditions = await _conditions_of(conn)
        assert set(conditions) == set(INDEXES)
        assert all("DATA IS NOT NULL" in (c or "") for c in conditions.values()), conditions
        community = report.subject
        by_person, by_day = await conn.run_sync(_plans, "1" * 32, community)
        assert "ix_event_records_pid" in by_person, by_person
        assert "ix_event_records_community_day" in by_day, by_day
        pid = fevers[0].data.person.pid
        assert [r.key for r in await counted_of_persons(conn, {pid}, {fevers[0].type.value})] == [
            fevers[0].dedup_key
        ]
        closed = await counted_of_days(conn, report.type.value, {(community, today)})
        assert [r.key for r in closed] == [report.dedup_key]

    clock.advance(minutes=30)
    await world.send(correction(fevers[1], reason=REASON))
    [cluster] = await world.alerts()
    assert cluster.state == "resolved", "the fever recorded before the upgrade was withdrawn"
    assert await fevers_counted(old_db) == 2
    yesterday = {"date": str(today - timedelta(days=1)), "zero": True}
    await world.send(correction(report, yesterday, reason="closed the wrong day"))
    async with old_db.connect() as conn:
        closed_days = set((await conn.execute(select(daily_reports.c.day))).scalars())
    assert closed_days == {today - timedelta(days=1)}

    await run_migrations(db_url, "zhibao_alerts", downgrade_to=BEFORE)
    async with old_db.connect() as conn:
        assert set((await _conditions_of(conn)).values()) == {None}


async def _conditions_of(conn: AsyncConnection) -> dict[str, str | None]:
    return await conn.run_sync(_conditions)
