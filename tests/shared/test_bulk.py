"""Rows written by the driver's executemany (``zhibao_shared.bulk``) read back exactly as
rows written through SQLAlchemy's own types, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
)

from tests.support.postgres import both_backends
from zhibao_shared.bulk import (
    Insert,
    bind_rows,
    day_binder,
    ignoring,
    insert_many,
    moment_binder,
)
from zhibao_shared.db import UtcDateTime, make_engine

pytestmark = pytest.mark.integration

database = both_backends("bulk")
rows = Table(
    "rows",
    MetaData(),
    Column("n", Integer, primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("day", Date, nullable=False),
    Column("note", String(20)),
)
ZONE = ZoneInfo("Asia/Shanghai")
#: local times, UTC, another offset, a whole second, one microsecond past midnight
MOMENTS = [
    datetime(2026, 12, 4, 7, 30, 15, 250000, tzinfo=ZONE),
    datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 4, 1, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 12, 4, 0, 0, 0, 1, tzinfo=ZONE),
]


async def test_driver_rows_read_back_as_sqlalchemy_rows_and_sort_with_them(database: str) -> None:
    engine = make_engine(database)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(rows.metadata.create_all)
            for n, at in enumerate(MOMENTS):  # SQLAlchemy: even n; the driver: odd n
                await conn.execute(insert(rows), {"n": 2 * n, "at": at, "day": at.date()})
            moment, day = moment_binder(conn), day_binder(conn)
            statement = Insert("rows", ("n", "at", "day", "note"), ignoring(rows))
            driver = [(2 * n + 1, moment(at), day(at.date()), None) for n, at in enumerate(MOMENTS)]
            await insert_many(conn, statement, driver)
            await insert_many(conn, statement, [(1, moment(MOMENTS[1]), day(date.today()), "x")])
            read = (await conn.execute(select(rows).order_by(rows.c.n))).all()
            by_time = (await conn.execute(select(rows.c.n).order_by(rows.c.at, rows.c.n))).all()
            if conn.dialect.name == "sqlite":  # the very text SQLAlchemy stores
                stored = (await conn.execute(text("SELECT n, at, day FROM rows ORDER BY n"))).all()
                assert [tuple(r[1:]) for r in stored[0::2]] == [tuple(r[1:]) for r in stored[1::2]]
    finally:
        await engine.dispose()
    assert [(r.at, r.day) for r in read[0::2]] == [(r.at, r.day) for r in read[1::2]]
    assert [r.at for r in read[0::2]] == MOMENTS, "the same moments, aware, in UTC"
    assert all(r.at.utcoffset() == timedelta(0) for r in read)
    assert read[1].note is None, "ignoring(): a row already there is kept as it was"
    assert [n for (n,) in by_time] == [6, 7, 0, 1, 2, 3, 4, 5], "in time, not in text"


#: Moments and days among other columns, in no particular order, one of each nullable.
mixed = Table(
    "mixed",
    MetaData(),
    Column("note", String(20)),
    Column("day", Date, nullable=False),
    Column("n", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("checked", UtcDateTime()),
)


async def test_rows_bound_by_their_table_s_column_types_read_back_as_sqlalchemy_rows(
    database: str,
) -> None:
    engine = make_engine(database)
    given: list[dict[str, Any]] = [
        {"day": at.date(), "at": at, "checked": at + timedelta(hours=n), "note": f"r{n}"}
        if n % 2
        else {"at": at, "day": at.date()}  # the note and the check missing: NULL
        for n, at in enumerate(MOMENTS)
    ]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(mixed.metadata.create_all)
            for n, row in enumerate(given):  # SQLAlchemy: even n; the driver: odd n
                # a plain DateTime on SQLite keeps a clock reading's text, so given in UTC
                await conn.execute(
                    insert(mixed), {**row, "n": 2 * n, "at": row["at"].astimezone(UTC)}
                )
            bound = bind_rows(conn, mixed, [{**row, "n": 2 * n + 1} for n, row in enumerate(given)])
            await insert_many(conn, Insert.of(mixed), bound)
            read = (await conn.execute(select(mixed).order_by(mixed.c.n))).all()
            by_time = (await conn.execute(select(mixed.c.n).order_by(mixed.c.at, mixed.c.n))).all()
    finally:
        await engine.dispose()
    as_sqlalchemy = [tuple(r._mapping[k] for k in ("note", "day", "at", "checked")) for r in read]
    assert as_sqlalchemy[1::2] == as_sqlalchemy[0::2]
    assert [r.note for r in read[1::2]] == [None, "r1", None, "r3"], "a missing name is NULL"
    assert [r.checked for r in read[3::4]] == [
        MOMENTS[1] + timedelta(hours=1),
        MOMENTS[3] + timedelta(hours=3),
    ]
    assert [n for (n,) in by_time] == [6, 7, 0, 1, 2, 3, 4, 5], "in time, not in text"
