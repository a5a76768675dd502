"""The audit trail's read model (changed only through Alembic migrations).

Kept apart from the rollups' metadata: a rebuild of the rollups wipes and replays
those tables, never this one (the trail has a consumer of its own and its rows are
keyed by where they came from, so storing them again changes nothing).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal_column,
)

from zhibao_shared.events import MAX_SOURCE_LENGTH

audit_metadata = MetaData()

#: One row per event line of an intake submission, per tally of refusals, per action.
#: Keyed by origin (``stream``: ZHIBAO_AUDIT; ``tokens``: the token store's actions),
#: sequence (stream sequence or token action number), line in the message and item
#: (an event's index in its submission; a token's scope).
audit_trail = Table(
    "audit_trail",
    audit_metadata,
    Column("origin", String(8), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("item", Integer, primary_key=True),
    #: Time, origin and position in one string: the order of the API's pages.
    Column("sort_key", String(80), nullable=False, unique=True),
    #: When the record was made (a submission: when intake answered, i.e. received).
    Column("at", DateTime(timezone=True), nullable=False),
    #: ``at``'s day in the district's time zone.
    Column("day", Date, nullable=False),
    #: event, submission (refused as a whole), tally or action.
    Column("kind", String(12), nullable=False),
    Column("service", String(200)),
    #: The event's type, or the action (alert.acknowledged, token.created, ...).
    Column("type", String(200)),
    #: accepted, duplicate, rejected, unavailable, refused or done.
    Column("outcome", String(200)),
    #: Why an event was rejected (or a refusal's reason).
    Column("code", String(200)),
    Column("status", Integer),
    Column("channel", String(200)),
    Column("token", String(200)),
    Column("token_name", String(200)),
    Column("person", String(200)),
    #: The unit concerned: an event's community, an action's unit (null when unknown).
    Column("unit", String(12)),
    Column("event_id", String(200)),
    Column("event_source", String(MAX_SOURCE_LENGTH)),
    Column("event_time", DateTime(timezone=True)),
    Column("target", String(200)),
    #: A short JSON object (no personal data).
    Column("detail", Text),
)
Index("ix_audit_trail_unit", audit_trail.c.unit, audit_trail.c.sort_key)

#: The rows of rejected events. The rejection counts read only those, and nearly every
#: row is an accepted event: the index over (day, unit) holds the rejected rows
#: alone, so storing an accepted event writes one index entry less. A query uses the
#: index when it states this condition (with the literal, so that PostgreSQL's generic
#: plans can use it too).
REJECTED = audit_trail.c.outcome == literal_column("'rejected'")
Index(
    "ix_audit_trail_rejected",
    audit_trail.c.day,
    audit_trail.c.unit,
    sqlite_where=REJECTED,
    postgresql_where=REJECTED,
)
