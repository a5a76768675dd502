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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Maintained counters: one row per (unit, metric, day); the value is a flow or a stock delta.
#: Keyed by (unit, day, metric) so that a unit's rows of one day lie together (a batch's
#: upserts and a day's read touch a page or two a unit); on SQLite the key is the table.
counters = Table(
    "counters",
    metadata,
    Column("unit", String(12), nullable=False),
    Column("metric", String(48), nullable=False),
    Column("day", Date, nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("unit", "day", "metric", name="counters_pkey"),
    sqlite_with_rowid=False,
)

#: Each unit's running total of every summed metric (``metrics.SUMMED``: stocks and the
#: flows behind cumulative figures) over all its days, kept in the same transaction as
#: ``counters``: a figure "up to day D" is the total less the few rows after D, so a read
#: costs the same whatever the length of the history.
counter_totals = Table(
    "counter_totals",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("metric", String(48), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Dedup keys of applied events, written in the same transaction as their counter changes.
applied_events = Table(
    "applied_events",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("stream_sequence", BigInteger, nullable=False),
    #: What the event counts by itself now (``domain.corrections.Footprint``), so a
    #: correction takes back exactly that; ``correction`` for a correction itself.
    Column("effect", Text),
    #: The (time, identity) of the correction that decided the event last (NULL: none
    #: yet), as sortable text (``domain.corrections.timed_key``).
    Column("corrected_by", String(450)),
    #: Its rank, kept with ``corrected_by`` (``zhibao_shared.events.ranked``): the order key
    #: it decided by (``domain.corrections.order_key``). NULL, or kept for another
    #: ``corrected_by`` (written since by a version before ranks): rank 0.
    Column("ranked_by", String(460)),
)

#: Corrections whose original has not been applied yet, applied when it arrives.
held_corrections = Table(
    "held_corrections",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("corrected_key", String(400), nullable=False),
    Column("payload", Text, nullable=False),
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
    #: Where the case was reported (labels; clusters and epidemic points match on them).
    Column("compound", String(64)),
    Column("building", String(64)),
    #: The registered places intake matched the report to (NULL: none).
    Column("compound_id", String(32)),
    Column("building_id", String(32)),
    Column("grid_id", String(32)),
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
    #: home or centralized, and the planned end the event gave (NULL: none given).
    Column("kind", String(12)),
    Column("until", Date),
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
    #: The counts the close declared (``DeclaredCounts``; NULL: not declared).
    Column("declared_screenings", BigInteger),
    Column("declared_fevers", BigInteger),
    Column("declared_new_suspected", BigInteger),
    Column("declared_new_confirmed", BigInteger),
    Column("declared_in_isolation", BigInteger),
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

#: One row while ``zhibao aggregator rebuild`` runs, deleted when it finishes: a rebuild
#: holds counter changes in memory across batches, so an interrupted one leaves events
#: recorded as applied whose counts were never written. The service refuses to start then.
rebuild_in_progress = Table(
    "rebuild_in_progress",
    metadata,
    Column("started_at", DateTime(timezone=True), primary_key=True),
)

#: Response levels declared per unit (from the response service's messages, latest number
#: in force; ``level`` NULL: lifted).
level_declarations = Table(
    "level_declarations",
    metadata,
    Column("declaration", String(32), primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("level", String(8)),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("declared_by", String(200), nullable=False),
)

#: Epidemic points (疫点) declared by the response service.
epidemic_points = Table(
    "epidemic_points",
    metadata,
    Column("point", String(32), primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("compound", String(64)),
    Column("building", String(64)),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("declared_at", DateTime(timezone=True), nullable=False),
    Column("declared_by", String(200), nullable=False),
    Column("lifted_at", DateTime(timezone=True)),
    Column("lifted_by", String(200)),
)

#: One metric over a range of days (see ``storage.by_metric``); it changes only when a
#: counter row is new, not when a value is added to.
COUNTERS_BY_METRIC = Index(
    "ix_counters_unit_metric_day", counters.c.unit, counters.c.metric, counters.c.day
)
Index("ix_held_corrections_corrected", held_corrections.c.corrected_key)
Index("ix_case_facts_time", case_facts.c.classification, case_facts.c.time)
Index("ix_case_facts_place", case_facts.c.community, case_facts.c.compound)
Index("ix_case_facts_compound_id", case_facts.c.community, case_facts.c.compound_id)
Index("ix_level_declarations_unit", level_declarations.c.unit, level_declarations.c.number)
Index("ix_epidemic_points_unit", epidemic_points.c.unit)
Index("ix_daily_reports_day", daily_reports.c.day, daily_reports.c.community)
