"""Upgrading a database whose communities have no first day on record: those that closed
days get the first of them, so the watchdog still asks them for their reports."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import delete, insert, select

from zhibao_alerts.tables import daily_reports, unit_first_days
from zhibao_shared.db import make_engine, run_migrations, sqlite_url


async def test_communities_with_reports_and_no_first_day_get_their_first_report_s_day(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path, "alerts-upgrade")
    await run_migrations(url, "zhibao_alerts")
    await run_migrations(url, "zhibao_alerts", downgrade_to="0013")
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(unit_first_days))
            await conn.execute(
                insert(daily_reports),
                [
                    {"community": "640106001001", "day": date(2026, 11, 3)},
                    {"community": "640106001001", "day": date(2026, 11, 2)},
                    {"community": "640106001002", "day": date(2026, 11, 5)},
                ],
            )
            # a first day on record (from the counters) stands
            await conn.execute(
                insert(unit_first_days), [{"unit": "640106001002", "day": date(2026, 11, 7)}]
            )
        await run_migrations(url, "zhibao_alerts")
        async with engine.connect() as conn:
            rows = await conn.execute(select(unit_first_days).order_by(unit_first_days.c.unit))
            assert [tuple(r) for r in rows] == [
                ("640106001001", date(2026, 11, 2)),
                ("640106001002", date(2026, 11, 7)),
            ]
    finally:
        await engine.dispose()
