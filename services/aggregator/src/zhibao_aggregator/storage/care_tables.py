"""The tables of the key-person register and of needs (changed only through Alembic).

A person appears only as the pseudonym (``pid``); places as registered ids and the
labels as reported. No free text: the events carry none.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table

from zhibao_aggregator.storage.tables import metadata
from zhibao_shared.db import UtcDateTime

_PLACE_ID = String(26)
_LABEL = String(64)

#: The register: one row per (community, person, category), as its latest action left it.
key_persons = Table(
    "key_persons",
    metadata,
    Column("community", String(12), primary_key=True),
    Column("pid", String(32), primary_key=True),
    Column("category", String(20), primary_key=True),
    #: False once removed (kept, so an older registration arriving late changes nothing)
    Column("registered", Boolean, nullable=False),
    Column("compound_id", _PLACE_ID),
    Column("building_id", _PLACE_ID),
    Column("grid_id", _PLACE_ID),
    Column("compound", _LABEL),
    Column("building", _LABEL),
    Column("grid", _LABEL),
    #: when the current registration began (the event time of the register action)
    Column("since", UtcDateTime),
    #: the time and identity of the action that decided the row (the latest one wins)
    Column("changed_at", UtcDateTime, nullable=False),
    Column("changed_key", String(400), nullable=False),
    #: the person's last screening, isolation check or task result
    Column("last_contact", UtcDateTime),
)
Index("ix_key_persons_pid", key_persons.c.pid)

#: Each unit's (every level's) registered persons per category, kept in the same
#: transaction as ``key_persons`` (±1 when a row's registered state changes), so a
#: rollup reads its counts by key instead of counting the register under the unit.
key_person_totals = Table(
    "key_person_totals",
    metadata,
    Column("unit", String(12), primary_key=True),
    Column("category", String(20), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Each need's task (its id derived from the need) with the need's person and kind.
need_tasks = Table(
    "need_tasks",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("community", String(12), nullable=False),
    Column("pid", String(32), nullable=False),
    Column("category", String(16), nullable=False),
    Column("urgency", String(8), nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
)
Index("ix_need_tasks_community_pid", need_tasks.c.community, need_tasks.c.pid)

CARE_TABLES = ("key_persons", "key_person_totals", "need_tasks")
