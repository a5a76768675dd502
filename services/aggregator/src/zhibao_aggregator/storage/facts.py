"""Reading and writing the fact tables (persons' case and isolation histories, daily
reports), shared by the writer and the corrections it applies."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import RowMapping, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from zhibao_aggregator.domain import contributions as c
from zhibao_aggregator.domain.quality import DECLARABLE
from zhibao_aggregator.storage.tables import daily_reports
from zhibao_shared.events import Classification, DeclaredCounts, IsolationAction, IsolationKind

CHUNK = 500


def as_utc(moment: datetime) -> datetime:
    """Datetimes are stored in UTC; SQLite gives them back naive, so make them aware."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def histories(
    conn: AsyncConnection, table: Any, pids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    """The rows of ``table`` (case or isolation facts) of each of ``pids``."""
    found: dict[str, list[RowMapping]] = defaultdict(list)
    for start in range(0, len(pids), CHUNK):
        rows = await conn.execute(select(table).where(table.c.pid.in_(pids[start : start + CHUNK])))
        for row in rows.mappings():
            found[row["pid"]].append(row)
    return found


def case_fact(row: RowMapping | dict[str, Any]) -> c.CaseFact:
    """A case_facts row as a fact."""
    return c.CaseFact(
        as_utc(row["time"]),
        row["dedup_key"],
        row["community"],
        Classification(row["classification"]),
    )


def isolation_fact(row: RowMapping | dict[str, Any]) -> c.IsolationFact:
    """An isolation_facts row as a fact."""
    return c.IsolationFact(
        as_utc(row["time"]),
        row["dedup_key"],
        row["community"],
        IsolationAction(row["action"]),
        row["kind"] or IsolationKind.HOME.value,
        row["until"],
    )


def isolation_row(pid: str, fact: c.IsolationFact) -> dict[str, Any]:
    """The isolation_facts row of a fact."""
    return {
        "pid": pid,
        "dedup_key": fact.key,
        "time": fact.time.astimezone(UTC),
        "community": fact.community,
        "action": fact.action.value,
        "kind": fact.kind,
        "until": fact.until,
    }


async def report_facts(
    conn: AsyncConnection, keys: Sequence[tuple[str, date]]
) -> dict[tuple[str, date], list[c.ReportFact]]:
    """The daily reports filed for each (community, day) of ``keys``."""
    existing: dict[tuple[str, date], list[c.ReportFact]] = defaultdict(list)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = await conn.execute(
            select(daily_reports).where(
                tuple_(daily_reports.c.community, daily_reports.c.day).in_(chunk)
            )
        )
        for r in rows.mappings():
            fact = c.ReportFact(as_utc(r["received_at"]), r["dedup_key"], r["zero"])
            existing[(r["community"], r["day"])].append(fact)
    return existing


def report_row(
    community: str, day: date, fact: c.ReportFact, counts: DeclaredCounts | None
) -> dict[str, Any]:
    """The daily_reports row of a report, with the counts it declared as
    ``declared_<figure>`` columns (NULL: not declared)."""
    return {
        "community": community,
        "day": day,
        "dedup_key": fact.key,
        "received_at": fact.received_at.astimezone(UTC),
        "zero": fact.zero,
        **{
            f"declared_{name}": getattr(counts, name) if counts is not None else None
            for name in DECLARABLE
        },
    }


def case_row(pid: str, key: str, time: datetime, community: str, data: Any) -> dict[str, Any]:
    """The case_facts row of a case report's data (``classification``, places)."""
    return {
        "pid": pid,
        "dedup_key": key,
        "time": time.astimezone(UTC),
        "community": community,
        "classification": data.classification.value,
        "compound": data.compound,
        "building": data.building,
        "compound_id": data.compound_id,
        "building_id": data.building_id,
        "grid_id": data.grid_id,
    }
