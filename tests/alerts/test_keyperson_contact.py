"""Key persons without contact: a registered person in isolation or an epidemic point who
has had no contact, check or delivery for the configured hours raises one alert, paged
to their grid's worker first; the next contact resolves it. In event time, checked by
the periodic watch without reading persons who are not due."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, published
from tests.alerts.db_work import Work, measure
from tests.alerts.test_grid_routing import BUILDING, COMPOUND, GRID, paged, rota
from tests.alerts.test_lifecycle import NO_ABERRATION, World
from tests.support.webhook import Receiver
from zhibao_alerts.care_feed import ApplyCareMessages
from zhibao_alerts.keypersons import KeyPersons, KeyPersonWatch
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.tables import alerts
from zhibao_alerts.task_handler import ApplyTaskMessages
from zhibao_shared.db import make_engine, run_migrations, sqlite_url
from zhibao_shared.events import PublishedEvent
from zhibao_shared.places import load_places
from zhibao_shared.response_events import DeclaredLevel, LevelMessage, PointMessage
from zhibao_shared.task_events import (
    TaskEvent,
    TaskMessage,
    TaskState,
    Urgency,
    task_message,
)

RULE = "keyperson_no_contact"
P = "1" * 32
OTHER_BUILDING = f"{COMPOUND}-B004"


class Care:
    """The events handler, the care consumer's handler and the watch over one database,
    paging real receivers (grid worker, community, street)."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, webhook: Receiver, hours: float = 24
    ) -> None:
        clock.now -= timedelta(days=10)  # events may not lie ahead of the real clock
        self.clock = clock
        self.persons = KeyPersons(
            hours, lambda: NO_ABERRATION, lambda: self.world.routing, "Asia/Shanghai", clock
        )
        self.world = World(
            engine, clock, webhook, rota=rota(webhook), places=load_places(), care=self.persons
        )
        self.messages = ApplyCareMessages(engine, self.persons, load_places)
        self.watch = KeyPersonWatch(engine, self.persons, on_alert=self.world.dispatcher.wake)

    async def alerts(self) -> list[Any]:
        return [a for a in await self.world.alerts() if a.rule == RULE]

    async def point(
        self,
        building: str | None,
        start: datetime,
        lifted: datetime | None = None,
        compound: str = "枫林湾",
    ) -> None:
        """The response service's epidemic point at ``compound`` ``building`` (as declared:
        labels, or a registered place's id)."""
        await self.messages(
            [
                PointMessage(
                    event="point_lifted" if lifted else "point_declared",
                    point="ab" * 16,
                    unit=COMPOUND[:12],
                    compound=compound,
                    building=building,
                    start=start,
                    declared_at=start,
                    declared_by="district duty",
                    lifted_at=lifted,
                    lifted_by="district duty" if lifted else None,
                )
            ]
        )

    async def level(
        self, unit: str, level: DeclaredLevel | None, number: int, at: datetime
    ) -> None:
        """The response service's declaration of ``level`` for ``unit`` (None: lifted)."""
        declared = LevelMessage(
            declaration=f"{number:032x}",
            unit=unit,
            level=level,
            number=number,
            declared_at=at,
            declared_by="city duty",
        )
        await self.messages([declared])

    async def done(self, pid: str, at: datetime) -> None:
        """A task about ``pid`` done (a need delivered, a visit), as the response service says."""
        await self.messages(
            [
                task_message(
                    TaskEvent.CHANGED,
                    task="cd" * 16,
                    unit=COMPOUND[:12],
                    kind="need_food",
                    due=at + timedelta(hours=1),
                    state=TaskState.DONE,
                    pid=pid,
                    at=at,
                )
            ]
        )


def key_person(
    pid: str,
    when: datetime,
    *,
    building: str = BUILDING,
    action: str = "register",
    labels: bool = True,
) -> PublishedEvent:
    """An elderly person living alone at 枫林湾 ``building``, as intake publishes it
    (without ``labels``: reported by the building's id alone)."""
    data: dict[str, Any] = {
        "person": {"pid": pid},
        "category": "elderly_alone",
        "action": action,
        "compound_id": COMPOUND,
        "building_id": building,
    }
    if labels:
        data |= {"compound": "枫林湾", "building": "3号楼"}
    else:
        data["place"] = building
    return published("keyperson", data, when=when)


def isolation(pid: str, action: str, when: datetime) -> PublishedEvent:
    return published(
        "isolation", {"person": {"pid": pid}, "action": action, "kind": "home"}, when=when
    )


def screened(pid: str, when: datetime) -> PublishedEvent:
    data = {"temperature_c": 36.6, "site": "household", "person": {"pid": pid}}
    return published("screening", data, when=when)


async def test_no_contact_in_isolation_for_the_hours_raises_one_alert_resolved_by_a_check(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    care = Care(engine, clock, webhook)
    start = clock.now - timedelta(hours=1)
    await care.world.send(key_person(P, start - timedelta(hours=1)), isolation(P, "start", start))
    clock.advance(hours=22, minutes=59)
    await care.watch.tick()
    assert await care.alerts() == [], "23 h without contact: not yet"
    clock.advance(minutes=2)
    await care.watch.tick()
    await care.watch.tick()
    [alert] = await care.alerts()
    assert alert.grid == GRID and alert.unit == COMPOUND[:12] and alert.state == "firing"
    assert "枫林湾 3号楼" in alert.summary_zh and "独居老人" in alert.summary_zh
    assert "隔离中" in alert.summary_zh and "24 小时" in alert.summary_zh
    assert P not in alert.summary_zh + alert.summary_en, "no pseudonym in the text"
    await care.world.dispatcher.tick()
    assert paged(webhook, "/grid") == [RULE] and paged(webhook, "/community") == []

    await care.world.send(isolation(P, "check", clock.now - timedelta(minutes=5)))
    [alert] = await care.alerts()
    assert alert.state == "resolved", "the next check resolves it"
    clock.advance(hours=24)
    await care.watch.tick()
    states = [a.state for a in await care.alerts()]
    assert states == ["resolved", "firing"], "a new silence is a new alert"


async def test_persons_not_watched_raise_nothing(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A registered person neither isolated nor in a point; an isolated person not on the
    register (the missed-check rule covers them); a person removed from the register."""
    care = Care(engine, clock, webhook)
    long_ago = clock.now - timedelta(hours=100)
    await care.world.send(
        key_person("2" * 32, long_ago),
        isolation("3" * 32, "start", long_ago),
        key_person("4" * 32, long_ago),
        isolation("4" * 32, "start", long_ago),
        key_person("4" * 32, long_ago + timedelta(hours=1), action="remove"),
    )
    await care.watch.tick()
    assert await care.alerts() == []


async def test_an_epidemic_point_watches_the_persons_of_its_building_and_a_task_done_resolves(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Last seen three days ago, the building becomes an epidemic point today: the hours
    count from the point's start. Only its building's persons are watched; a task about
    the person done (a delivery) is a contact; the point lifted ends the watch."""
    care = Care(engine, clock, webhook)
    seen = clock.now - timedelta(days=3)
    await care.world.send(
        key_person(P, seen), screened(P, seen), key_person("5" * 32, seen, building=OTHER_BUILDING)
    )
    await care.point("3栋", clock.now)
    clock.advance(hours=23)
    await care.watch.tick()
    assert await care.alerts() == [], "the hours count from the point's start"
    clock.advance(hours=2)
    await care.watch.tick()
    [alert] = await care.alerts()
    assert "疫点" in alert.summary_zh and alert.grid == GRID
    await care.done(P, clock.now - timedelta(minutes=1))
    [alert] = await care.alerts()
    assert alert.state == "resolved"

    clock.advance(hours=25)
    await care.watch.tick()
    assert [a.state for a in await care.alerts()] == ["resolved", "firing"]
    await care.point("3栋", clock.now - timedelta(days=2), lifted=clock.now)
    assert [a.state for a in await care.alerts()] == ["resolved", "resolved"]
    clock.advance(hours=48)
    await care.watch.tick()
    assert len(await care.alerts()) == 2, "no longer watched once the point is lifted"


async def test_a_point_declared_by_its_compound_s_id_watches_the_persons_living_there(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The response service takes a point's registered compound by its id (the simulator
    declares its points so): the key persons of that compound, registered by their
    building's id without labels, are watched as for a point declared in words."""
    care = Care(engine, clock, webhook)
    seen = clock.now - timedelta(days=3)
    await care.world.send(key_person(P, seen, labels=False), screened(P, seen))
    await care.point(None, clock.now, compound=COMPOUND)
    clock.advance(hours=25)
    await care.watch.tick()
    [alert] = await care.alerts()
    assert "疫点" in alert.summary_zh and alert.grid == GRID


async def test_contacts_count_in_event_time_whatever_order_they_arrive_in(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    care = Care(engine, clock, webhook)
    start = clock.now - timedelta(hours=40)
    await care.world.send(key_person(P, start), isolation(P, "start", start))
    await care.world.send(isolation(P, "check", clock.now - timedelta(hours=2)))
    await care.world.send(screened(P, clock.now - timedelta(hours=30)))  # older, arrives late
    await care.watch.tick()
    assert await care.alerts() == [], "the last contact is 2 h ago"
    clock.advance(hours=23)
    await care.watch.tick()
    [alert] = await care.alerts()
    await care.world.send(screened(P, clock.now - timedelta(hours=26)))  # before the silence
    [alert] = await care.alerts()
    assert alert.state == "firing", "a contact older than the last known one resolves nothing"


async def test_the_hours_are_configurable_and_validated(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIBAO_ALERTS_KEYPERSON_CONTACT_HOURS", "6")
    hours = AlertsSettings().alerts_keyperson_contact_hours
    assert hours == 6
    care = Care(engine, clock, webhook, hours=hours)
    await care.world.send(key_person(P, clock.now), isolation(P, "start", clock.now))
    clock.advance(hours=6, seconds=1)
    await care.watch.tick()
    [alert] = await care.alerts()
    assert "6 小时" in alert.summary_zh
    for wrong in ("0", "-3", "many"):
        monkeypatch.setenv("ZHIBAO_ALERTS_KEYPERSON_CONTACT_HOURS", wrong)
        with pytest.raises(ValidationError, match="keyperson_contact_hours"):
            AlertsSettings()


async def _watch_work(tmp_path: Path, persons: int, webhook: Receiver) -> Work:
    """The work of 20 watch ticks with ``persons`` watched persons, none of them due."""
    url = sqlite_url(tmp_path, f"care{persons}")
    await run_migrations(url, "zhibao_alerts")
    engine = make_engine(url)
    work = measure(engine)
    try:
        clock = Clock()
        care = Care(engine, clock, webhook)
        events = [
            e
            for n in range(persons)
            for e in (
                key_person(f"{n:032x}", clock.now),
                isolation(f"{n:032x}", "start", clock.now),
            )
        ]
        for first in range(0, len(events), 400):
            await care.world.send(*events[first : first + 400])
        work.reset()
        for _ in range(20):
            clock.advance(minutes=1)
            await care.watch.tick()
        assert await care.alerts() == []
        return Work(work.statements, work.steps)
    finally:
        await engine.dispose()


async def test_an_idle_watch_does_not_work_harder_with_more_watched_persons(
    tmp_path: Path, webhook: Receiver
) -> None:
    few = await _watch_work(tmp_path, 10, webhook)
    many = await _watch_work(tmp_path, 2000, webhook)
    assert many.statements == few.statements, (few, many)
    assert many.steps <= 2 * few.steps, (few, many)


async def test_the_alert_is_recorded_in_the_alerts_table_with_its_grid(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The alert's dedup key names the person's pseudonym prefix and the silence's start:
    raised once however often the watch passes."""
    care = Care(engine, clock, webhook)
    await care.world.send(key_person(P, clock.now), isolation(P, "start", clock.now))
    clock.advance(hours=25)
    for _ in range(3):
        await care.watch.tick()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(alerts.c.dedup_key).where(alerts.c.rule == RULE))).all()
    assert [r.dedup_key.split(":")[2] for r in rows] == [P[:8]]


async def test_an_urgent_medical_need_overdue_is_critical_and_reaches_the_grid_worker_first(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """The need's person lives in GRID: the grid worker is paged at once, the community
    after 5 minutes, the street after 10 (the critical ladder); an ordinary need's overdue
    task is a warning for the community, as before. Its task done resolves it."""
    care = Care(engine, clock, webhook)
    where = {"compound": "枫林湾", "building": "3号楼", "compound_id": COMPOUND}
    where |= {"building_id": BUILDING, "grid_id": GRID}
    asked = clock.now - timedelta(hours=3)
    await care.world.send(
        published(
            "need",
            {"person": {"pid": P}, "category": "medical", "urgency": "urgent", **where},
            when=asked,
        )
    )
    apply = ApplyTaskMessages(
        engine,
        lambda: NO_ABERRATION,
        lambda: care.world.routing,
        "Asia/Shanghai",
        clock,
        on_alert=care.world.dispatcher.wake,
    )

    def overdue(task: str, kind: str, pid: str, urgency: Urgency) -> TaskMessage:
        return task_message(
            TaskEvent.OVERDUE,
            task=task,
            unit=COMPOUND[:12],
            kind=kind,
            due=asked + timedelta(hours=2),
            state=TaskState.ISSUED,
            pid=pid,
            at=clock.now,
            urgency=urgency,
        )

    urgent = overdue("e" * 32, "need_medical", P, "urgent")
    await apply([urgent, overdue("f" * 32, "need_food", "2" * 32, "normal")])
    found = {a.window.split(":")[1]: a for a in await care.world.alerts()}
    assert (found["need_medical"].severity, found["need_food"].severity) == ("critical", "warning")
    assert found["need_medical"].grid == GRID and found["need_food"].grid is None
    assert found["need_medical"].summary_zh.startswith("【紧急需求未满足】")
    await care.world.dispatcher.tick()
    assert paged(webhook, "/grid") == ["task_overdue"]
    assert paged(webhook, "/community") == ["task_overdue"], "only the ordinary one, at once"
    clock.advance(minutes=5)
    await care.world.dispatcher.tick()
    assert len(paged(webhook, "/community")) == 2 and paged(webhook, "/street") == []
    clock.advance(minutes=5)
    await care.world.dispatcher.tick()
    assert paged(webhook, "/street") == ["task_overdue"]

    done = task_message(
        TaskEvent.CHANGED,
        task=urgent.task,
        unit=urgent.unit,
        kind=urgent.kind,
        due=urgent.due,
        state=TaskState.DONE,
        pid=P,
        at=clock.now,
    )
    await apply([done])
    found = {a.window.split(":")[1]: a for a in await care.world.alerts()}
    assert found["need_medical"].state == "resolved" and found["need_food"].state == "firing"


@pytest.mark.parametrize("sealed", [COMPOUND[:9], "6401"], ids=["street", "city"])
async def test_a_sealing_level_declared_above_the_community_watches_its_key_persons(
    engine: AsyncEngine, clock: Clock, webhook: Receiver, sealed: str
) -> None:
    """Red (the rules' default sealed level) declared for the street, or the whole city: its
    communities' key persons are watched from the declaration; a later yellow ends it."""
    care = Care(engine, clock, webhook)
    seen = clock.now - timedelta(days=3)
    await care.world.send(key_person(P, seen), screened(P, seen))
    await care.level(sealed, "yellow", 1, clock.now)
    clock.advance(hours=30)
    await care.watch.tick()
    assert await care.alerts() == [], "yellow does not seal"
    await care.level(sealed, "red", 2, clock.now)
    clock.advance(hours=24, seconds=1)
    await care.watch.tick()
    [alert] = await care.alerts()
    assert "所在单元封控中" in alert.summary_zh
    await care.level(sealed, "red", 2, clock.now)  # redelivered: nothing changes
    await care.level(sealed, "yellow", 3, clock.now)
    [alert] = await care.alerts()
    assert alert.state == "resolved"


async def test_a_need_without_a_place_keeps_the_registered_place(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    care = Care(engine, clock, webhook)
    start = clock.now - timedelta(hours=2)
    need = {"person": {"pid": P}, "category": "food", "urgency": "normal"}
    await care.world.send(key_person(P, start), isolation(P, "start", start))
    await care.world.send(published("need", need, when=clock.now - timedelta(hours=1)))
    clock.advance(hours=23)
    await care.watch.tick()
    [alert] = await care.alerts()
    assert alert.grid == GRID and "枫林湾 3号楼" in alert.summary_zh
