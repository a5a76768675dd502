"""The alerts schema (changed only through Alembic migrations). No residents' personal data:
the persons named here are staff who acted with personal tokens ("王芳 (社区书记)")."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from zhibao_shared.db import UtcDateTime
from zhibao_shared.tokens import PERSON_MAX

metadata = MetaData()
#: A registered place's id (``zhibao_shared.places``): ``<community12>-C<nnn>-B<nnn>``.
PLACE_ID_LENGTH = 26
#: A person as a personal token names them (zhibao_shared.tokens.PERSON_MAX characters).
PERSON_LENGTH = PERSON_MAX

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(256), nullable=False, index=True),
    Column("rule", String(64), nullable=False),
    Column("unit", String(12), nullable=False, index=True),
    # a cluster's window: compound/building (64 + 1 + 64) and the day
    Column("window", String(160), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("summary_zh", Text, nullable=False),
    Column("summary_en", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("upper_bound", Float),
    Column("fired_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime()),
    Column("acknowledged_by", String(64)),
    # the person of the personal token that acknowledged / resolved it (null: a shared one)
    Column("acknowledged_by_person", String(PERSON_LENGTH)),
    Column("resolved_at", UtcDateTime()),
    # the token name that resolved it (null: resolved by the system, e.g. its window passed)
    Column("resolved_by", String(64)),
    Column("resolved_by_person", String(PERSON_LENGTH)),
    Column("escalation_step", Integer, nullable=False),
    Column("last_notified_at", UtcDateTime()),
    # when the dispatcher next has something to do for the alert (escalate, remind, let
    # its window pass); null when nothing: an idle service reads only the due ones
    Column("next_action_at", UtcDateTime(), index=True),
    # the reminder interval of this alert when not its severity's (a silent community)
    Column("repeat_minutes", Float),
    # the registered grid (places registry id) of the place the alert is about, if it is
    # about one: its worker is paged first
    Column("grid", String(PLACE_ID_LENGTH)),
    # the watchdog reads the open alerts of its own rules only
    Index("ix_alerts_rule_state", "rule", "state"),
)

timeline = Table(
    "alert_timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(64)),
    Column("detail", Text),
    # the person who acted (a personal token's), when a person did
    Column("person", String(PERSON_LENGTH)),
)

#: The outbox: a notification is recorded as sent only when its receiver answered 2xx.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, nullable=False, index=True),
    Column("reason", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(400), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime()),
    Column("created_at", UtcDateTime()),
    UniqueConstraint("alert_id", "reason", "channel", "target", name="uq_notification"),
)

#: New events that leave no ``event_records`` row (corrections, task results) are marked
#: applied here; a record marks its event applied (``store.new_keys`` reads both).
applied_events = Table(
    "applied_events",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
)

fevers = Table(
    "fevers",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("community", String(12), nullable=False),
    Column("place", String(140), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    #: the screened person's pseudonym, when the screening names one (counted once)
    Column("person", String(32)),
    #: the day (window) of the cluster alert this fever was counted in, once it was
    Column("cluster_day", Date),
    # each batch counts the fevers of the places it touched within the cluster window
    Index("ix_fevers_place_at", "community", "place", "at"),
)

daily_counts = Table(
    "daily_counts",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("metric", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Who is in isolation (pseudonyms only) and when they were last checked.
isolations = Table(
    "isolations",
    metadata,
    Column("pid", String(32), primary_key=True),
    Column("community", String(12), nullable=False, index=True),
    Column("last_check_at", UtcDateTime(), nullable=False),
    Column("active", Integer, nullable=False),
    #: event time of the latest start or end: ``active`` follows it, not arrival order
    Column("status_at", UtcDateTime()),
    #: that event's identity: of a start and an end at the same time, the one with the
    #: later identity decides, as the aggregator orders a person's facts (null: before 0017)
    Column("status_key", String(400)),
)

#: Communities' daily reports (which days they closed).
daily_reports = Table(
    "daily_reports",
    metadata,
    Column("community", String(12), primary_key=True),
    Column("day", Date, primary_key=True),
)

#: When each community last sent anything.
community_activity = Table(
    "community_activity",
    metadata,
    Column("community", String(12), primary_key=True),
    Column("last_event_at", UtcDateTime(), nullable=False),
)

#: Since when the watchdog has watched each community of the registry: a community that
#: never sent anything counts as silent from then (not from the beginning of time).
community_watch = Table(
    "community_watch",
    metadata,
    Column("community", String(12), primary_key=True),
    Column("since", UtcDateTime(), nullable=False),
)

#: Silences: alerts whose labels match every matcher are not notified while active.
silences = Table(
    "silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matchers", Text, nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("comment", Text, nullable=False),
    # the units the silence covers (JSON list): who may list and expire it
    Column("units", Text),
    Column("created_by_token", String(64)),
    Column("expired_at", UtcDateTime()),
    Column("expired_by", String(64)),
    Column("expired_by_token", String(64)),
    Column("created_by_person", String(PERSON_LENGTH)),
    Column("expired_by_person", String(PERSON_LENGTH)),
)

#: The first local day each unit (community, street, district, city) sent anything:
#: EARS treats the days before it as missing, not as zero, and the watchdog asks a
#: community for no daily report of a day before it.
unit_first_days = Table(
    "unit_first_days",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("day", Date, nullable=False),
)

#: Persons already counted in a unit's daily series (fevers, suspected): once a day each.
person_days = Table(
    "person_days",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("metric", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("pid", String(32), primary_key=True),
)

#: Persons already alerted on by an immediate rule (a confirmed case, a death): once each.
case_persons = Table(
    "case_persons",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("pid", String(32), primary_key=True),
)

#: Tasks the response service announced overdue (and those closed after their due time),
#: per (task, unit): a transferred task is overdue again, separately, in its new unit.
#: No personal data: the task's id, unit, kind and times only.
task_alerts = Table(
    "task_alerts",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("unit", String(12), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("due", UtcDateTime(), nullable=False),
    #: when it was announced overdue (the message's time); null: only its closing is known
    Column("overdue_at", UtcDateTime()),
    #: when it was closed or moved away; overdue while null or earlier than overdue_at
    Column("closed_at", UtcDateTime()),
    #: done, unreachable, refused, cancelled or transferred
    Column("outcome", String(16)),
    #: for a transfer: the unit it went to
    Column("to_unit", String(12)),
    #: the task_overdue alert it counts in
    Column("alert_id", Integer, index=True),
)

#: The events the alerts service applied, as they count now (issue 16: corrections): a
#: correction re-judges its event from here. ``data`` is the event's (pseudonymised)
#: data as last decided, null when it counts towards nothing (a normal screening, or a
#: retracted event); ``decided_at``/``decided_by`` are the (time, identity) of the
#: correction that decided it, null while none has, and ``ranked_by`` keeps its rank.
event_records = Table(
    "event_records",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("community", String(12), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    #: the local day it counts on (a daily report: the day it closes)
    Column("day", Date, nullable=False),
    #: the person it names, when it names one (as last decided)
    Column("pid", String(32)),
    Column("data", Text),
    Column("decided_at", UtcDateTime()),
    Column("decided_by", String(400)),
    #: the deciding correction's rank, kept with its identity
    #: (``zhibao_shared.events.ranked``); null, or kept for another ``decided_by``
    #: (decided before 0018, or since by a version before it): rank 0
    Column("ranked_by", String(410)),
    #: the reporter's level (``reporterlevel``): corrections apply from it up (null: not
    #: stamped, or recorded before 0016)
    Column("level", String(12)),
)
#: The records that count towards something. Only those are ever looked up by person or
#: by day (most records are screenings that count towards nothing, looked up by key
#: alone): the two indexes hold only them, so recording any other event writes its row
#: and its key, not two index entries more. A lookup states this condition to use them.
COUNTING = event_records.c.data.is_not(None)
Index("ix_event_records_pid", event_records.c.pid, sqlite_where=COUNTING, postgresql_where=COUNTING)
Index(
    "ix_event_records_community_day",
    event_records.c.community,
    event_records.c.type,
    event_records.c.day,
    sqlite_where=COUNTING,
    postgresql_where=COUNTING,
)

#: Corrections whose event has not arrived yet: applied when it does, then deleted.
held_corrections = Table(
    "held_corrections",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("corrects", String(400), nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("action", String(16), nullable=False),
    Column("type", String(40)),
    Column("data", Text),
    Column("reason", Text, nullable=False),
    Column("reporter", String(64), nullable=False),
    Column("receivedat", UtcDateTime(), nullable=False),
    #: the correction's reporter level (null: not stamped, or held before 0016)
    Column("level", String(12)),
)

#: Key persons (重点人群) and the persons of needs, by pseudonym: their community,
#: category, registered place and last contact. ``due_at`` is when the person will have
#: been without contact for too long while in isolation, an epidemic point or a sealed
#: building (null: not watched, or alerted already): the watch reads only the due ones.
key_persons = Table(
    "key_persons",
    metadata,
    Column("pid", String(32), primary_key=True),
    Column("community", String(12), nullable=False, index=True),
    #: elderly_alone, disabled, ...; null: known from a need only (not on the register)
    Column("category", String(32)),
    #: 1 while on the register; the latest register/remove (event time) decides
    Column("registered", Integer, nullable=False),
    Column("registered_at", UtcDateTime()),
    Column("compound_id", String(PLACE_ID_LENGTH)),
    Column("building_id", String(PLACE_ID_LENGTH)),
    Column("grid_id", String(PLACE_ID_LENGTH)),
    #: the labels as reported (a place not registered is matched on them)
    Column("compound", String(64)),
    Column("building", String(64)),
    #: event time of the place's latest report
    Column("place_at", UtcDateTime()),
    #: event time of the latest contact, check or delivery
    Column("last_contact_at", UtcDateTime()),
    Column("due_at", UtcDateTime(), index=True),
    #: the open no-contact alert, until the next contact resolves it
    Column("alert_id", Integer),
)

#: Epidemic points (疫点) as the response service announces them (compound and/or
#: building; registered ids where the labels match a registered place).
epidemic_points = Table(
    "epidemic_points",
    metadata,
    Column("point", String(32), primary_key=True),
    Column("community", String(12), nullable=False, index=True),
    Column("compound", String(64)),
    Column("building", String(64)),
    Column("compound_id", String(PLACE_ID_LENGTH)),
    Column("building_id", String(PLACE_ID_LENGTH)),
    Column("start", UtcDateTime(), nullable=False),
    Column("lifted_at", UtcDateTime()),
)

#: The response level in force per unit (the declaration with the highest number): a
#: unit under a level the rules call sealed (``key_persons.sealed_levels``) watches its
#: key persons as an epidemic point does.
declared_levels = Table(
    "declared_levels",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("number", Integer, nullable=False),
    #: red, orange, yellow, blue; null: lifted
    Column("level", String(8)),
    Column("declared_at", UtcDateTime(), nullable=False),
)
