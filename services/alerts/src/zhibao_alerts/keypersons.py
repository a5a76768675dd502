"""Key persons without contact: what events and messages change, and the periodic check.

The service keeps, per person (pseudonym), the register (``zhibao.keyperson.v1``), where
they live, their last contact in event time and ``due_at``: when they will have gone
``ZHIBAO_ALERTS_KEYPERSON_CONTACT_HOURS`` without contact while watched (see
:mod:`zhibao_alerts.domain.care`). Whatever changes one of these — an event naming the
person, an epidemic point declared or lifted in their community — recomputes ``due_at``
for the persons concerned only; the periodic check reads the persons due (an indexed
range, nothing while nobody is due) and raises one alert each. The next contact
resolves it (so does the person leaving the watch: off the register, out of isolation,
the point lifted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zhibao_alerts import care_store, store
from zhibao_alerts.care_store import PersonNote
from zhibao_alerts.domain import care
from zhibao_alerts.domain.care import NoContact, Where
from zhibao_alerts.domain.config import Rules
from zhibao_alerts.place_names import grid_of, home_name
from zhibao_alerts.raising import Routing, raise_alerts
from zhibao_shared.care_events import PublishedKeyPerson, PublishedNeed
from zhibao_shared.events import IsolationAction, PublishedEvent, PublishedIsolation
from zhibao_shared.events import PublishedScreening as Screening
from zhibao_shared.places import Places

#: Isolation actions that are a contact (someone saw or checked the person).
CONTACT_ACTIONS = frozenset({IsolationAction.START, IsolationAction.CHECK})
#: Persons alerted on per check at most (the rest on the next one, the longest silent first).
PER_CHECK = 500


def where_of(data: PublishedKeyPerson | PublishedNeed, places: Places | None) -> Where:
    """Where a key-person or need event says the person lives (the registered grid of a
    registered building when intake did not name it)."""
    fields = data.data
    grid = fields.grid_id or grid_of(places, fields.building_id)
    return Where(fields.compound_id, fields.building_id, grid, fields.compound, fields.building)


@dataclass
class CareNotes:
    """What a batch says about key persons: registrations and places, contacts (latest
    event time per person), and the persons whose watch may have changed otherwise
    (registered, removed, moved, isolated or released)."""

    persons: list[PersonNote] = field(default_factory=list)
    contacts: dict[str, datetime] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def contact(self, pid: str, at: datetime) -> None:
        """A contact with ``pid`` at ``at`` (event time)."""
        self.contacts[pid] = max(at, self.contacts.get(pid, at))


def notes_of(events: Iterable[PublishedEvent], places: Places | None) -> CareNotes:
    """The key-person notes of a batch of events (other events add nothing)."""
    notes = CareNotes()
    for event in events:
        if isinstance(event, PublishedKeyPerson | PublishedNeed):
            pid = event.data.person.pid
            keyed = isinstance(event, PublishedKeyPerson)
            notes.persons.append(
                PersonNote(
                    pid,
                    event.subject,
                    event.time,
                    where_of(event, places),
                    event.data.category.value if keyed else None,
                    event.data.action.value if isinstance(event, PublishedKeyPerson) else None,
                )
            )
            notes.touched.add(pid)
        elif isinstance(event, Screening) and event.data.person is not None:
            notes.contact(event.data.person.pid, event.time)
        elif isinstance(event, PublishedIsolation):
            if event.data.action in CONTACT_ACTIONS:
                notes.contact(event.data.person.pid, event.time)
            notes.touched.add(event.data.person.pid)
    return notes


class KeyPersons:
    """The key persons' watch, on the callers' transactions."""

    def __init__(
        self,
        hours: float,
        rules: Callable[[], Rules],
        routing: Callable[[], Routing],
        timezone: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._hours = hours
        self._rules = rules
        self._routing = routing
        self._zone = ZoneInfo(timezone)
        self._clock = clock

    def _sealed_levels(self) -> tuple[str, ...]:
        return self._rules().key_persons.sealed_levels

    async def note_events(self, conn: AsyncConnection, events: Sequence[PublishedEvent]) -> None:
        """Apply a batch of events (after the isolations they carry were stored)."""
        notes = notes_of(events, self._routing().places)
        await self.apply(conn, notes)

    async def apply(self, conn: AsyncConnection, notes: CareNotes) -> None:
        """Store registrations, places and contacts; recompute the persons touched and
        those whose last contact moved (a screening of anybody else costs one query)."""
        if not notes.touched and not notes.contacts:
            return
        await care_store.note_persons(conn, notes.persons)
        contacted = await care_store.note_contacts(conn, notes.contacts)
        if notes.touched or contacted:
            await self.refresh(conn, notes.touched | contacted, contacted)

    async def refresh(
        self, conn: AsyncConnection, pids: Iterable[str], contacted: AbstractSet[str] = frozenset()
    ) -> None:
        """Recompute when each person is due; resolve the open alert of one who was
        contacted since (``contacted``) or is no longer watched."""
        now = self._clock()
        schedule: dict[str, tuple[datetime | None, int | None]] = {}
        for known in await care_store.load(conn, pids, self._sealed_levels()):
            person = known.person
            watch = care.watched_since(
                person, known.isolated_since, known.points, known.sealed_since
            )
            alert = known.alert_id
            if alert is not None and (person.pid in contacted or watch is None):
                why = "contacted" if person.pid in contacted else "no longer watched"
                await self._resolve(conn, alert, person.last_contact_at, why, now)
                alert = None
            due = None
            if alert is None and watch is not None:
                due = care.due_at(person, watch[0], self._hours)
            if (due, alert) != (known.due_at, known.alert_id):
                schedule[person.pid] = (due, alert)
        await care_store.schedule(conn, schedule)

    @staticmethod
    async def _resolve(
        conn: AsyncConnection, alert_id: int, contact: datetime | None, why: str, now: datetime
    ) -> None:
        """Resolve a no-contact alert (when it is still open)."""
        row = await store.get_alert(conn, alert_id)
        if row is None or row.state not in store.OPEN_STATES:
            return
        detail = (
            f"contact at {contact.isoformat()}"
            if why == "contacted" and contact is not None
            else "the person is no longer in isolation, an epidemic point or on the register"
        )
        await store.update_alert(
            conn, alert_id, state="resolved", resolved_at=now, next_action_at=None
        )
        await store.note(conn, alert_id, now, "resolved", actor="system", detail=detail)

    async def check(self, conn: AsyncConnection) -> list[int]:
        """Raise the alerts of the persons due by now; returns the alerts opened."""
        now = self._clock()
        pids = await care_store.due(conn, now, PER_CHECK)
        if not pids:
            return []
        routing, rule = self._routing(), self._rules().key_persons
        day = now.astimezone(self._zone).date()
        found: dict[str, NoContact] = {}
        schedule: dict[str, tuple[datetime | None, int | None]] = {}
        for known in await care_store.load(conn, pids, rule.sealed_levels):
            watch = care.watched_since(
                known.person, known.isolated_since, known.points, known.sealed_since
            )
            if watch is None or known.alert_id is not None:
                schedule[known.person.pid] = (None, known.alert_id)  # nothing to wait for
                continue
            since, reasons = watch
            silent = care.silent_since(known.person, since)
            place = home_name(routing.places, known.person.home)
            found[known.person.pid] = NoContact(
                known.person, silent, reasons, place, self._hours, rule.severity, day
            )
        triggers = {pid: n.trigger() for pid, n in found.items()}
        opened = await raise_alerts(
            conn, [(t, None) for t in triggers.values()], routing, now, self._zone
        )
        rows = await store.alerts_with_keys(conn, {t.dedup_key for t in triggers.values()})
        ids = {row.dedup_key: int(row.id) for row in rows}  # the newest of each key
        for pid, trigger in triggers.items():
            schedule[pid] = (None, ids.get(trigger.dedup_key))
        await care_store.schedule(conn, schedule)
        return opened


class KeyPersonWatch:
    """The periodic check (the watchdog's interval), once the event backlog is applied."""

    def __init__(
        self,
        engine: AsyncEngine,
        persons: KeyPersons,
        caught_up: Callable[[], Awaitable[bool]] | None = None,
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._persons = persons
        self._caught_up = caught_up
        self._on_alert = on_alert

    async def tick(self) -> None:
        """One check; wakes the dispatcher when alerts were opened."""
        if self._caught_up is not None and not await self._caught_up():
            return
        async with self._engine.begin() as conn:
            opened = await self._persons.check(conn)
        if opened and self._on_alert is not None:
            self._on_alert()
