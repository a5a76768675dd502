"""Two alerts services on one PostgreSQL database, consuming the events stream at once.

A Kubernetes rolling update with ``maxSurge: 1`` runs the old and the new pod side by
side on the same database and the same durable consumer; district partitions
(``ZHIBAO_ALERTS_DISTRICTS`` / ``ZHIBAO_ALERTS_DURABLE``) run side by side on one
database with a durable each. Either way the instances here are the service itself
(``bootstrap.build`` + ``Alerts.connect``: its consumer, handler, dispatcher and
watchdog loops all running), fed by intake's subjects and payloads on a real
nats-server, with small batches so that the fevers of one cluster and the reports of one
person are spread over both. What the on-call person sees and what the service stores
must be what one service would have made of the same events: every alert raised once
and paged once (on-call webhook, catch-all webhook, NATS), every person counted once a
day, a person's isolation followed across districts.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Clock, published
from tests.support.webhook import Receiver
from zhibao_alerts.bootstrap import Alerts, build, migrate, utc_now
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.tables import (
    alerts,
    applied_events,
    case_persons,
    daily_counts,
    event_records,
    isolations,
    notifications,
    person_days,
)
from zhibao_shared.broker import ensure_stream, events_stream_config
from zhibao_shared.db import make_engine
from zhibao_shared.events import EventType, PublishedEvent, published_payload
from zhibao_shared.hierarchy import CODE_LENGTH
from zhibao_shared.natsserver import NatsServer
from zhibao_shared.subjects import EVENTS_STREAM, event_subject

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Two communities of each district (the shipped registry's).
XINGQING = ("640104001001", "640104001002")
JINFENG = ("640106001001", "640106001002")
#: The rules raised from events (the watchdog's judge the present, on their own clock).
EVENT_RULES = ("fever_cluster", "immediate_", "ears_")
#: Per page of an alert: the on-call person (a rota on the city covers every unit), the
#: catch-all receiver, and the NATS subject.
ON_CALL, CATCH_ALL = "/duty", "/all"
_pids = itertools.count(1)


def pid() -> str:
    """A new person's pseudonym; its first 8 characters (what a case alert's window
    shows) differ from every other's."""
    return f"{next(_pids):08x}" + "0" * 24


# --- the service, twice ---------------------------------------------------------------


def oncall_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "oncall.yaml"
    rota = {
        "unit": "6401",
        "shift": "always",
        "people": [{"name": "city duty", "webhook": f"{receiver.url}{ON_CALL}"}],
    }
    oncall = {"rotations": [rota], "webhooks": [f"{receiver.url}{CATCH_ALL}"]}
    path.write_text(json.dumps(oncall))
    return path


def settings_for(
    name: str, nats_url: str, database_url: str, oncall: Path, tmp_path: Path, **kw: Any
) -> AlertsSettings:
    return AlertsSettings(
        nats_url=nats_url,
        data_dir=tmp_path / name,
        alerts_database_url=database_url,
        alerts_oncall_path=oncall,
        _env_file=None,
        **kw,
    )


@asynccontextmanager
async def running(
    *all_settings: AlertsSettings, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[list[Alerts]]:
    """The services as ``create_app`` runs them (consumer, dispatcher and watchdog loops
    started by ``connect``), one after the other as a rolling update starts them."""
    await migrate(all_settings[0])
    services: list[Alerts] = []
    try:
        for settings in all_settings:
            service = build(settings, clock)
            services.append(service)
            await service.connect()
        yield services
    finally:
        await asyncio.gather(*(service.close() for service in services))


async def until(condition: Callable[[], Awaitable[bool]], what: str, within_s: float = 60) -> None:
    """Wait for ``condition`` (the service's loops run meanwhile)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within_s} s: {what}")
        await asyncio.sleep(0.1)


async def settled(services: Sequence[Alerts], db: AsyncEngine) -> None:
    """Every published event applied and acked by the services' consumers, and every
    notification queued so far sent, then a few passes of every dispatcher at once."""

    async def applied() -> bool:
        lags = [await s.consumer.pending() for s in services if s.consumer is not None]
        return len(lags) == len(services) and not any(lags)

    async def delivered() -> bool:
        async with db.connect() as conn:
            query = select(func.count()).where(notifications.c.status == "pending")
            return (await conn.scalar(query)) == 0

    await until(applied, "the events applied")
    try:  # a page is sent at once (group_wait_seconds: 0), so well within this
        await until(delivered, "the notifications sent", within_s=30)
    except AssertionError as exc:
        async with db.connect() as conn:
            query = (
                select(
                    alerts.c.rule,
                    alerts.c.unit,
                    notifications.c.channel,
                    notifications.c.attempts,
                    notifications.c.created_at,
                    notifications.c.next_attempt_at,
                )
                .join(alerts, alerts.c.id == notifications.c.alert_id)
                .where(notifications.c.status == "pending")
            )
            held = [tuple(row) for row in await conn.execute(query)]
        raise AssertionError(
            f"{exc}; still pending (rule, unit, channel, attempts, queued at, due at): {held}"
        ) from None
    for _ in range(3):
        await asyncio.gather(*(s.dispatcher.tick() for s in services if s.dispatcher))


async def publish(nats_url: str, events: Iterable[PublishedEvent]) -> None:
    """As intake publishes: each event on its community's subject, with its identity."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        for event in events:
            subject = event_subject(event.subject, EventType(event.type).short)
            await js.publish(
                subject,
                published_payload(event),
                stream=EVENTS_STREAM,
                headers={"Nats-Msg-Id": event.dedup_key},
            )
    finally:
        await client.close()


class Bus:
    """Alert notifications on NATS (``zhibao.alerts.<severity>.<district>``)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._client: Client | None = None

    async def listen(self, nats_url: str) -> None:
        async def received(msg: Msg) -> None:
            self.bodies.append(json.loads(msg.data))

        self._client = await nats.connect(nats_url)
        await self._client.subscribe("zhibao.alerts.>", cb=received)
        await self._client.flush()

    async def stop(self) -> None:
        """After the services closed: everything they published has been handled."""
        client, self._client = self._client, None
        if client is not None:
            await client.flush()
            await client.drain()


# --- what one service would have made of the events -----------------------------------


class Ledger:
    """What the events should add to the daily series EARS reads (``person_days``,
    ``daily_counts``): a named person once a unit, metric and local day; a screening
    naming nobody each time."""

    def __init__(self, service: Alerts) -> None:
        self.lengths = [CODE_LENGTH[lv] for lv in service.rules.current.aberration.levels]
        self.persons: dict[tuple[str, str, date], set[str]] = defaultdict(set)
        self.anonymous: Counter[tuple[str, str, date]] = Counter()

    def tally(self, events: Iterable[PublishedEvent], fever_threshold_c: float) -> None:
        """Fevers (screenings at or above the threshold) and suspected cases."""
        for event in events:
            data = event.data.model_dump()
            person = (data.get("person") or {}).get("pid")
            if (data.get("temperature_c") or 0) >= fever_threshold_c:
                self.count(event, "fevers", person)
            elif data.get("classification") == "suspected":
                self.count(event, "suspected", person)

    def count(self, event: PublishedEvent, metric: str, person: str | None) -> None:
        day = event.time.astimezone(SHANGHAI).date()
        for length in self.lengths:
            series = (event.subject[:length], metric, day)
            if person is None:
                self.anonymous[series] += 1
            else:
                self.persons[series].add(person)

    def person_days(self) -> set[tuple[str, str, date, str]]:
        return {(u, m, d, p) for (u, m, d), found in self.persons.items() for p in found}

    def counts(self) -> dict[tuple[str, str, date], int]:
        series = set(self.persons) | set(self.anonymous)
        return {s: len(self.persons.get(s, ())) + self.anonymous[s] for s in series}


def screening(
    community: str,
    person: str | None,
    when: datetime,
    *,
    temperature: float = 38.6,
    building: str | None = None,
) -> PublishedEvent:
    """A screening at a building of 枫林湾 (``building``), else at the community's gate."""
    data: dict[str, Any] = {"temperature_c": temperature, "site": "gate"}
    if building is not None:
        data |= {"site": "household", "compound": "枫林湾", "building": building}
    if person is not None:
        data["person"] = {"pid": person}
    return published("screening", data, community=community, when=when)


def case(community: str, person: str, classification: str, when: datetime) -> PublishedEvent:
    data = {"person": {"pid": person}, "classification": classification}
    return published("case", data, community=community, when=when)


def isolation(community: str, person: str, action: str, when: datetime) -> PublishedEvent:
    data = {"person": {"pid": person}, "action": action, "kind": "home"}
    return published("isolation", data, community=community, when=when)


def interleaved(groups: Sequence[Sequence[PublishedEvent]]) -> list[PublishedEvent]:
    """One event of each group in turn: a group's events lie far apart on the stream, so
    that small batches fetched by two instances split them."""
    rounds = itertools.zip_longest(*groups)
    return [event for one_round in rounds for event in one_round if event is not None]


# --- what the services made of them ----------------------------------------------------


async def stored_alerts(db: AsyncEngine) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(select(alerts).order_by(alerts.c.id))).all())


async def stored_series(
    db: AsyncEngine,
) -> tuple[set[tuple[str, str, date, str]], dict[tuple[str, str, date], int]]:
    async with db.connect() as conn:
        persons = {(u, m, d, p) for u, m, d, p in await conn.execute(select(person_days))}
        counts = {(u, m, d): int(v) for u, m, d, v in await conn.execute(select(daily_counts))}
    return persons, counts


def fingerprint(alert: Any) -> str:
    """The Alertmanager fingerprint of an alert (receivers de-duplicate on it)."""
    return hashlib.sha256(alert.dedup_key.encode()).hexdigest()[:16]


def paged(bodies: Iterable[dict[str, Any]]) -> Counter[str]:
    """How often each alert (fingerprint) was in a notification (a grouped one holds
    several alerts of one unit and rule)."""
    return Counter(alert["fingerprint"] for body in bodies for alert in body["alerts"])


def assert_paged_once(
    alert_list: Sequence[Any], webhook: Receiver, bus: Bus, *, on_call: bool = True
) -> None:
    """Each of these alerts reached the catch-all receiver, NATS and (``on_call``) the
    on-call person exactly once; no alert at all reached any of them twice."""
    wanted = {fingerprint(a) for a in alert_list}
    assert len(wanted) == len(alert_list)
    receivers = [(CATCH_ALL, webhook.bodies(CATCH_ALL)), ("nats", bus.bodies)]
    if on_call:
        receivers.append((ON_CALL, webhook.bodies(ON_CALL)))
    for where, bodies in receivers:
        pages = paged(bodies)
        assert {fp: pages[fp] for fp in wanted} == dict.fromkeys(wanted, 1), where
        assert all(n == 1 for n in pages.values()), (where, pages)


def event_alerts(found: Iterable[Any]) -> list[Any]:
    return [a for a in found if a.rule.startswith(EVENT_RULES)]


# --- the tests ---------------------------------------------------------------------------


async def test_two_instances_on_one_durable_page_every_alert_once(
    nats_server: NatsServer, postgres_url: str, webhook: Receiver, tmp_path: Path
) -> None:
    """A rolling update: the old and the new pod share the durable ``alerts`` and take
    batches of 2 and 3 from it; 10 clusters, one person confirmed three times, four
    more confirmed, feverish persons screened again and again, fevers naming nobody."""
    oncall = oncall_file(tmp_path, webhook)
    settings = [
        settings_for(
            name,
            nats_server.url,
            postgres_url,
            oncall,
            tmp_path,
            alerts_durable="alerts",
            alerts_batch_size=batch,
        )
        for name, batch in (("old-pod", 2), ("new-pod", 3))
    ]
    bus, db = Bus(), make_engine(postgres_url)
    await bus.listen(nats_server.url)
    client = await nats.connect(nats_server.url)
    await ensure_stream(client.jetstream(), events_stream_config(settings[0]))
    await client.close()
    communities = [*JINFENG, *XINGQING]
    at = datetime.now(UTC) - timedelta(minutes=10)
    try:
        async with running(*settings) as services:
            ledger = Ledger(services[0])
            groups: list[list[PublishedEvent]] = []
            clusters: list[tuple[str, str, date]] = []
            for n in range(10):  # 10 clusters: 3 persons with a fever in one building each
                community, building = communities[n % 4], str(n + 1)
                fevers = [
                    screening(community, pid(), at + timedelta(seconds=n), building=building)
                    for _ in range(3)
                ]
                clusters.append((community, building, fevers[0].time.astimezone(SHANGHAI).date()))
                groups.append(fevers)
            same = pid()  # one confirmed person, reported three times (three ids)
            groups.append([case(c, same, "confirmed", at) for c in communities[:3]])
            others = [pid() for _ in range(4)]  # and four more, once each
            groups.append(
                [case(c, p, "confirmed", at) for c, p in zip(communities, others, strict=True)]
            )
            for community in communities[:3]:  # a feverish person screened 3 times a day
                person = pid()
                groups.append([screening(community, person, at) for _ in range(3)])
            mobile = pid()  # ... and one screened in two communities of one district
            groups.append([screening(c, mobile, at) for c in (*JINFENG, JINFENG[0])])
            suspected = pid()
            groups.append([case(JINFENG[1], suspected, "suspected", at) for _ in range(2)])
            groups.append([screening(c, None, at) for c in communities])  # naming nobody
            groups.append([screening(c, None, at, temperature=36.6) for c in communities[:3]])
            events = interleaved(groups)
            ledger.tally(events, services[0].settings.fever_threshold_c)

            await publish(nats_server.url, events)
            await settled(services, db)
            handled = [s.consumer.stats.events for s in services if s.consumer is not None]
        await bus.stop()

        assert sum(handled) == len(events) and all(handled), (
            f"both instances consumed, each event acked once: {handled}"
        )
        found = await stored_alerts(db)
        raised = event_alerts(found)
        assert Counter(a.dedup_key for a in found).most_common(1)[0][1] == 1, "no alert twice"
        assert sorted((a.rule, a.unit, a.window) for a in raised if a.rule == "fever_cluster") == (
            sorted(("fever_cluster", c, f"枫林湾/{b}:{d}") for c, b, d in clusters)
        )
        confirmed = {a.window.rsplit(":", 1)[1]: a for a in raised if a.rule.startswith("imm")}
        assert sorted(confirmed) == sorted(p[:8] for p in [same, *others])
        assert len(raised) == 15, "10 clusters and 5 persons confirmed, nothing else"
        assert confirmed[same[:8]].unit in communities[:3]
        assert all(a.occurrences == 1 and a.state == "firing" for a in raised), [
            (a.rule, a.window, a.occurrences, a.state) for a in raised
        ]
        assert all("有 3 人发热" in a.summary_zh for a in raised if a.rule == "fever_cluster")
        assert_paged_once(raised, webhook, bus)

        persons, counts = await stored_series(db)
        assert persons == ledger.person_days(), "each person once per unit, metric and day"
        assert counts == ledger.counts(), "the daily series count persons, and the unnamed"
        async with db.connect() as conn:
            alerted = set(await conn.execute(select(case_persons.c.rule, case_persons.c.pid)))
            marked = list((await conn.execute(select(applied_events.c.dedup_key))).scalars())
            recorded = list((await conn.execute(select(event_records.c.dedup_key))).scalars())
        assert alerted == {("immediate_confirmed", p) for p in [same, *others]}
        applied = marked + recorded  # an event is marked, or recorded, once
        assert sorted(applied) == sorted(e.dedup_key for e in events)
    finally:
        await bus.stop()
        await db.dispose()


async def test_two_district_partitions_on_one_database_alert_as_one_service(
    nats_server: NatsServer, postgres_url: str, webhook: Receiver, tmp_path: Path
) -> None:
    """Partitions ``640106`` and ``640104`` (durables ``alerts-<district>``) on one
    database: persons whose events fall in both districts are one person to them."""
    oncall = oncall_file(tmp_path, webhook)
    jinfeng, xingqing = JINFENG[0], XINGQING[0]
    settings = [
        settings_for(
            district,
            nats_server.url,
            postgres_url,
            oncall,
            tmp_path,
            alerts_districts=[district],
            alerts_durable=f"alerts-{district}",
            alerts_batch_size=batch,
        )
        for district, batch in (("640106", 2), ("640104", 3))
    ]
    clock = Clock()
    now = clock.now
    bus, db = Bus(), make_engine(postgres_url)
    await bus.listen(nats_server.url)
    client = await nats.connect(nats_server.url)
    await ensure_stream(client.jetstream(), events_stream_config(settings[0]))
    await client.close()
    moved, unchecked, checked_elsewhere = pid(), pid(), pid()
    case_person, mobile = pid(), pid()
    soon = now - timedelta(minutes=20)
    groups = [
        # isolated in Jinfeng, checked there, isolation ended after a move to Xingqing
        [
            isolation(jinfeng, moved, "start", now - timedelta(hours=3)),
            isolation(jinfeng, moved, "check", now - timedelta(minutes=150)),
            isolation(xingqing, moved, "end", now - timedelta(minutes=90)),
        ],
        # isolated in Xingqing, never checked: the control, overdue a day later
        [isolation(xingqing, unchecked, "start", now - timedelta(hours=2))],
        # isolated in Xingqing, checked by a Jinfeng worker since
        [
            isolation(jinfeng, checked_elsewhere, "check", now - timedelta(minutes=30)),
            isolation(xingqing, checked_elsewhere, "start", now - timedelta(hours=2)),
        ],
        [case(jinfeng, case_person, "confirmed", soon)],
        [case(xingqing, case_person, "confirmed", soon + timedelta(minutes=1))],
        [screening(jinfeng, pid(), soon, building="7") for _ in range(3)],
        [screening(xingqing, pid(), soon, building="7") for _ in range(3)],
        [screening(c, mobile, soon) for c in (jinfeng, xingqing)],
    ]
    events = interleaved(groups)
    try:
        async with running(*settings, clock=clock) as services:
            ledger = Ledger(services[0])
            ledger.tally(events, services[0].settings.fever_threshold_c)
            await publish(nats_server.url, events)
            await settled(services, db)
            before = await stored_alerts(db)
            on_call_before = paged(webhook.bodies(ON_CALL))

            clock.advance(hours=23)  # a day without a check for whoever is still isolated

            async def watched() -> bool:
                rules = [a.rule for a in await stored_alerts(db)]
                return "missed_isolation_check" in rules

            await until(watched, "a watchdog pass a day later")
            await settled(services, db)
            handled = [s.consumer.stats.events for s in services if s.consumer is not None]
        await bus.stop()

        district_events = [
            sum(e.subject.startswith(d) for e in events) for d in ("640106", "640104")
        ]
        assert handled == district_events, "each partition applied its own district's events"
        raised = event_alerts(before)
        assert sorted((a.rule, a.unit) for a in raised if a.rule == "fever_cluster") == [
            ("fever_cluster", xingqing),
            ("fever_cluster", jinfeng),
        ]
        [confirmed] = [a for a in raised if a.rule == "immediate_confirmed"]
        assert confirmed.window.endswith(case_person[:8]), "the same person pages once"
        assert len(raised) == 3 and all(a.occurrences == 1 for a in raised)
        wanted = {fingerprint(a) for a in raised}
        assert {fp: n for fp, n in on_call_before.items() if fp in wanted} == dict.fromkeys(
            wanted, 1
        ), "the on-call person was paged once for each, before any escalation was due"

        found = await stored_alerts(db)
        missed = [a for a in found if a.rule == "missed_isolation_check"]
        assert [(a.unit, a.state) for a in missed] == [(xingqing, "firing")], (
            "no missed check for the isolation that ended in the other district"
        )
        assert "有 1 名隔离人员" in missed[0].summary_zh, "the one checked elsewhere is not overdue"
        # the on-call person is paged again as the earlier alerts escalate a day later;
        # the catch-all receiver and NATS hear of each alert once, when it fires
        assert_paged_once([*event_alerts(found), *missed], webhook, bus, on_call=False)
        assert paged(webhook.bodies(ON_CALL))[fingerprint(missed[0])] == 1
        async with db.connect() as conn:
            rows = await conn.execute(
                select(
                    isolations.c.pid,
                    isolations.c.community,
                    isolations.c.active,
                    isolations.c.last_check_at,
                )
            )
            kept = {p: (c, a, at) for p, c, a, at in rows}
            alerted = set(await conn.execute(select(case_persons.c.rule, case_persons.c.pid)))
        assert kept == {
            moved: (xingqing, 0, now - timedelta(minutes=150)),
            unchecked: (xingqing, 1, now - timedelta(hours=2)),
            checked_elsewhere: (xingqing, 1, now - timedelta(minutes=30)),
        }
        assert alerted == {("immediate_confirmed", case_person)}
        persons, counts = await stored_series(db)
        assert persons == ledger.person_days(), "the mobile person once in each district"
        assert counts == ledger.counts()
    finally:
        await bus.stop()
        await db.dispose()
