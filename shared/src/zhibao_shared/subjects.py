"""NATS subject names and JetStream stream definitions: the bus layout.

Event subjects carry district and community so consumers can partition by
district with a subject filter: ``zhibao.events.<district>.<community>.<type>``.
A bundle of several events of one district (a CloudEvents JSON batch, see
``zhibao_shared.events.parse_message``) goes on ``zhibao.events.<district>.bundle``,
so district partitioning holds for bundles too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zhibao_shared.hierarchy import ancestors, district_of

EVENTS_STREAM = "ZHIBAO_EVENTS"
EVENTS_ALL = "zhibao.events.>"
AUDIT_STREAM = "ZHIBAO_AUDIT"
AUDIT_ALL = "zhibao.audit.>"
DEAD_LETTER_STREAM = "ZHIBAO_DEADLETTER"
DEAD_LETTER_ALL = "zhibao.deadletter.>"
#: Tasks pushed down to communities (the response service's messages about them).
TASKS_STREAM = "ZHIBAO_TASKS"
TASKS_ALL = "zhibao.tasks.>"
#: Request-reply subject for systems that already speak NATS (same answer as HTTP).
INTAKE_SUBMIT = "zhibao.intake.submit"
#: Queue group shared by intake instances answering INTAKE_SUBMIT.
INTAKE_QUEUE = "intake"


def event_subject(community: str, type_short: str) -> str:
    """Subject an accepted event is published on."""
    return f"zhibao.events.{district_of(community)}.{community}.{type_short}"


def bundle_subject(district: str) -> str:
    """Subject a bundle of one district's events is published on."""
    return f"zhibao.events.{district}.bundle"


def type_filters(type_short: str, districts: Sequence[str] = ()) -> tuple[str, ...]:
    """Subject filters for one event type (e.g. ``need``, ``keyperson``) of ``districts``
    (all when empty): the type's own subject and the districts' bundles, which may hold it."""
    return tuple(
        subject
        for district in (districts or ("*",))
        for subject in (
            f"zhibao.events.{district}.*.{type_short}",
            f"zhibao.events.{district}.bundle",
        )
    )


def district_events(district: str) -> str:
    """Subject filter matching every event of one district."""
    return f"zhibao.events.{district}.>"


def rollup_subject(level: str, code: str) -> str:
    """Subject a changed rollup is published on."""
    return f"zhibao.rollups.{level}.{code}"


def alert_subject(severity: str, district: str) -> str:
    """Subject an alert notification is published on."""
    return f"zhibao.alerts.{severity}.{district}"


def dead_letter_subject(service: str, subject: str) -> str:
    """Where a consumer parks a message it gave up on, keeping its original subject."""
    return f"zhibao.deadletter.{service}.{subject}"


def audit_subject(service: str, action: str) -> str:
    """Where a service appends an audit record (who did what, for which unit)."""
    return f"zhibao.audit.{service}.{action}"


def task_places(districts: Sequence[str]) -> list[str]:
    """The district places of task subjects a partition of ``districts`` reads: its
    districts and the units above them (a city's or province's own messages stand in
    their own code's place, ``zhibao.tasks.6401.6401.level``); ``*`` when empty."""
    own = [district_of(d) for d in districts]
    above = [code for d in own for code in ancestors(d)[1:]]
    return list(dict.fromkeys(own + above)) or ["*"]


def task_event_filters(districts: Sequence[str], events: Iterable[str]) -> list[str]:
    """Subject filters for the messages ``events`` (issued, changed, overdue; level,
    point) of ``districts`` and the units above them (all when empty). The tasks stream
    also carries the response service's declared levels and epidemic points, which a
    task consumer must not get."""
    return [
        f"zhibao.tasks.{place}.*.{event}" for place in task_places(districts) for event in events
    ]


def is_task_event(subject: str, events: Iterable[str]) -> bool:
    """True when ``subject`` carries one of the task messages ``events``."""
    return subject.rsplit(".", 1)[-1] in set(events)


def task_subject(unit: str, event: str) -> str:
    """Subject a task's event (issued, changed, overdue) is published on; a unit above
    the district (the city, the province) is its own district place."""
    return f"zhibao.tasks.{district_of(unit)}.{unit}.{event}"
