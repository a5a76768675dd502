"""The response service's tables (SQLAlchemy Core; Alembic migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from zhibao_shared.db import UtcDateTime

metadata = MetaData()
#: an autoincrementing key (SQLite autoincrements INTEGER PRIMARY KEY only)
_SERIAL = BigInteger().with_variant(Integer, "sqlite")

declarations = Table(
    "declarations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("unit", String(12), nullable=False),
    #: 1, 2, 3, ... per unit: the latest is the unit's level (two at once: one is refused)
    Column("number", Integer, nullable=False),
    Column("level", String(8), nullable=False),
    Column("reason", Text, nullable=False),
    #: JSON list of the compounds named (labels, no personal data)
    Column("compounds", Text, nullable=False),
    #: JSON list of the measures as the playbook stated them when declared
    Column("measures", Text, nullable=False),
    Column("declared_by", String, nullable=False),
    Column("declared_token", String, nullable=False),
    Column("declared_at", UtcDateTime, nullable=False),
    UniqueConstraint("unit", "number", name="uq_declarations_unit_number"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("unit", String(12), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("due", UtcDateTime, nullable=False),
    Column("state", String(12), nullable=False),
    Column("compound", String(64)),
    Column("worker", String(64)),
    #: the person's pseudonym (what the bus carries)
    Column("pid", String(32)),
    #: person, contact and note, AES-GCM sealed; NULL once purged or when none was given
    Column("sealed", LargeBinary),
    Column("issuer_token", String, nullable=False),
    Column("issuer_name", String, nullable=False),
    #: The issuing command centre's level (its highest scope over the unit; null for a
    #: need's task and tasks issued before 0006): one above the community may change the
    #: task's state only from that level up.
    Column("issuer_scope", String(12)),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("overdue_at", UtcDateTime),
    Column("purged_at", UtcDateTime),
    Column("declaration_id", String(32), ForeignKey("declarations.id")),
    Column("measure", Integer),
    #: a need's task (kind need_<category>): normal or urgent; NULL for other tasks
    Column("urgency", String(8)),
    #: what was asked for, keyed (HMAC: the contact and note stay unreadable), when issued
    #: under an Idempotency-Key: a retry asks for the same (NULL: not keyed, or before 0007)
    Column("request_fingerprint", String(64)),
    Index("ix_tasks_unit_state", "unit", "state"),
    Index("ix_tasks_state_due", "state", "due"),
    Index("ix_tasks_closed_at", "closed_at"),
    Index("ix_tasks_declaration", "declaration_id"),
)

task_history = Table(
    "task_history",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("task_id", String(32), ForeignKey("tasks.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("action", String(12), nullable=False),
    Column("state", String(12), nullable=False),
    Column("unit", String(12), nullable=False),
    Column("from_unit", String(12)),
    Column("worker", String(64)),
    Column("actor", String, nullable=False),
    Column("actor_token", String, nullable=False),
    Index("ix_task_history_task", "task_id", "id"),
)

#: Bus messages written with the change they announce, published (then deleted) by a loop.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    #: Nats-Msg-Id: a resend after a crash is dropped by JetStream's duplicate window
    Column("msg_id", String(32), nullable=False),
    Column("subject", String, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

#: Task results applied from the events stream (one row per result event, its identity the
#: key): a redelivered or replayed result is recognised and changes nothing twice.
task_results = Table(
    "task_results",
    metadata,
    Column("dedup_key", String(400), primary_key=True),
    Column("task_id", String(32), nullable=False),
    #: the history row the result wrote (its state change, or the record of a late result)
    Column("history_id", BigInteger().with_variant(Integer, "sqlite")),
    Column("stream_sequence", BigInteger, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("method", String(8), nullable=False),
    #: JSON list of the measures reported
    Column("measures", Text, nullable=False),
    #: the note, AES-GCM sealed like the task's details; NULL when none (or purged)
    Column("note", LargeBinary),
    #: False: recorded only (the task was closed or had moved on when the result came)
    Column("applied", Boolean, nullable=False),
    Index("ix_task_results_history", "history_id"),
    Index("ix_task_results_task", "task_id"),
)
