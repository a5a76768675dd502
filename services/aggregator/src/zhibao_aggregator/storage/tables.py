"""The aggregator's schema (changed only through Alembic migrations).

Persons appear only as pseudonyms (``pid``); no table holds an identifier.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Maintained counters: one row per (unit, metric, day); the value is a flow or a stock delta.
counters = Table(
    "counters",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("metric", String(48), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Dedup keys of applied events, written in the same transaction as their counter changes.
applied_events = Table(
    "applied_events",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("stream_sequence", BigInteger, nullable=False),
)

#: Each person's classification history (keyed by pseudonym).
case_facts = Table(
    "case_facts",
    metadata,
    Column("pid", String(32), primary_key=True),
    Column("dedup_key", String(400), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("community", String(12), nullable=False),
    Column("classification", String(16), nullable=False),
)

#: Each person's isolation history (keyed by pseudonym).
isolation_facts = Table(
    "isolation_facts",
    metadata,
    Column("pid", String(32), primary_key=True),
    Column("dedup_key", String(400), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("community", String(12), nullable=False),
    Column("action", String(8), nullable=False),
)

#: Daily reports (日报) per community and reported date.
daily_reports = Table(
    "daily_reports",
    metadata,
    Column("community", String(12), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("dedup_key", String(400), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("zero", Boolean, nullable=False),
)

#: Public releases (one per day, frozen once made): the published figures and the
#: state the next release starts from, as JSON. A rebuild keeps them.
public_releases = Table(
    "public_releases",
    metadata,
    Column("day", Date, primary_key=True),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
)

Index("ix_counters_unit_day", counters.c.unit, counters.c.day)
Index("ix_daily_reports_day", daily_reports.c.day, daily_reports.c.community)
