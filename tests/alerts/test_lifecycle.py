"""Rules, lifecycle, escalation and delivery, against a real database and a real receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import COMMUNITY, Clock, confirmed, fever
from tests.support.webhook import Receiver
from zhibao_alerts.dispatcher import Dispatcher
from zhibao_alerts.domain.config import OnCall, Rules
from zhibao_alerts.domain.horizon import PageHorizon
from zhibao_alerts.handler import ApplyEvents
from zhibao_alerts.keypersons import KeyPersons
from zhibao_alerts.raising import Routing
from zhibao_alerts.settings import AlertsSettings
from zhibao_alerts.tables import alerts, notifications
from zhibao_shared.consumer import Delivery
from zhibao_shared.events import FEVER_THRESHOLD_C, PublishedEvent
from zhibao_shared.hierarchy import load_registry
from zhibao_shared.places import Places


def oncall(receiver: Receiver) -> OnCall:
    start = "2026-01-01T00:00:00+08:00"
    return OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": COMMUNITY,
                    "start": start,
                    "people": [{"name": "grid worker", "webhook": f"{receiver.url}/community"}],
                },
                {
                    "unit": COMMUNITY[:9],
                    "start": start,
                    "people": [{"name": "street duty", "webhook": f"{receiver.url}/street"}],
                },
            ],
        }
    )


NO_ABERRATION = Rules.model_validate({"aberration": {"methods": []}})


class World:
    """The alerts handler and dispatcher over one database, paging a local receiver.

    As in the service, the handler wakes the dispatcher when it commits a new alert.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        receiver: Receiver,
        rules: Rules = NO_ABERRATION,
        rota: OnCall | None = None,
        fever_threshold_c: float = FEVER_THRESHOLD_C,
        places: Places | None = None,
        care: KeyPersons | None = None,
        horizon: PageHorizon | None = None,
    ) -> None:
        self.engine = engine
        routing = Routing(
            rota or oncall(receiver),
            load_registry(),
            "http://aggregator",
            places=places,
            horizon=horizon,
        )
        self.routing = routing
        self.clock = clock
        self.dispatcher = self.another_dispatcher()
        self.apply = ApplyEvents(
            engine,
            lambda: rules,
            lambda: routing,
            "Asia/Shanghai",
            clock,
            fever_threshold_c,
            on_alert=self.dispatcher.wake,
            care=care,
        )
        self.receiver = receiver

    def another_dispatcher(self, concurrency: int = 16) -> Dispatcher:
        """A dispatcher over this world's database and routing (another instance's)."""

        async def no_nats(_subject: str, _body: bytes) -> None:
            return None

        routing = self.routing
        return Dispatcher(
            self.engine, lambda: routing, no_nats, self.clock, concurrency=concurrency
        )

    async def send(self, *events: PublishedEvent) -> None:
        await self.apply([Delivery(e, "s", i, 1) for i, e in enumerate(events)])

    async def alerts(self) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(alerts).order_by(alerts.c.id))).all())


async def test_a_confirmed_case_fires_once_and_redelivery_changes_nothing(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    case = confirmed()
    await world.send(case)
    await world.send(case)  # redelivered
    await world.send(confirmed())  # the same person again, in a follow-up report
    found = await world.alerts()
    assert [(a.rule, a.severity, a.occurrences) for a in found] == [
        ("immediate_confirmed", "critical", 1)
    ]
    assert await world.dispatcher.tick() == 2  # the community's on-call, and NATS
    body = webhook.bodies("/community")[0]
    assert body["version"] == "4" and body["status"] == "firing"
    labels = body["alerts"][0]["labels"]
    assert labels["alertname"] == "immediate_confirmed"
    assert labels["street"] == COMMUNITY[:9] and labels["city"] == "6401"
    assert "确诊" in body["commonAnnotations"]["summary_zh"]
    assert await world.dispatcher.tick() == 0, "a notification is sent once"


async def test_three_fevers_in_one_building_make_one_cluster_alert(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await world.send(fever(), fever())
    assert await world.alerts() == []
    await world.send(fever(building="9"), fever())
    await world.send(fever())
    found = await world.alerts()
    assert [(a.rule, a.window.split(":")[0], a.occurrences) for a in found] == [
        ("fever_cluster", "枫林湾/3", 2)
    ]
    assert "有 4 人发热" in found[0].summary_zh, "the alert says the latest count, not the first"


async def test_the_fever_threshold_is_the_shared_setting(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """ZHIBAO_FEVER_THRESHOLD_C = 38.5 (as for the rollups): 38.2 °C is no fever here."""
    threshold = AlertsSettings(fever_threshold_c=38.5).fever_threshold_c
    world = World(engine, clock, webhook, fever_threshold_c=threshold)
    await world.send(fever(), fever(), fever())
    assert await world.alerts() == []
    await world.send(fever(temperature=38.6), fever(temperature=38.6), fever(temperature=38.7))
    assert [a.rule for a in await world.alerts()] == ["fever_cluster"]


async def test_unacknowledged_alert_escalates_to_the_street_and_ack_stops_it(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await world.send(confirmed())
    await world.dispatcher.tick()
    assert webhook.bodies("/street") == []
    clock.advance(minutes=6)
    await world.dispatcher.tick()
    assert len(webhook.bodies("/street")) == 1
    alert = (await world.alerts())[0]
    assert alert.escalation_step == 1
    async with engine.begin() as conn:
        await conn.execute(alerts.update().values(state="acknowledged"))
    clock.advance(minutes=60)
    await world.dispatcher.tick()
    assert len(webhook.bodies("/street")) == 1 and len(webhook.bodies("/community")) == 1


async def test_failed_delivery_is_retried_and_recorded(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    webhook.status = 500
    await world.send(confirmed())
    assert await world.dispatcher.tick() == 1  # NATS took it; the webhook answered 500
    async with engine.connect() as conn:
        query = select(notifications).where(notifications.c.channel == "webhook")
        row = (await conn.execute(query)).one()
    assert row.status == "pending" and row.attempts == 1 and "HTTP 500" in row.last_error
    webhook.status = 200
    assert await world.dispatcher.tick() == 0, "backoff: not retried at once"
    clock.advance(seconds=3)
    assert await world.dispatcher.tick() == 1
    assert len(webhook.bodies("/community")) == 1
    tried = [key for path, key in webhook.keys if path == "/community"]
    assert len(tried) == 2 and tried[0] == tried[1] == str(row.id), "a resend keeps its key"


async def test_a_resolved_alert_that_recurs_opens_a_new_one(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await world.send(confirmed())
    async with engine.begin() as conn:
        await conn.execute(alerts.update().values(state="resolved"))
    await world.send(confirmed(pid="c" * 32))
    assert [a.state for a in await world.alerts()] == ["resolved", "firing"]


async def test_a_jump_over_the_units_own_baseline_raises_an_ears_alarm(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(
        engine,
        clock,
        webhook,
        Rules.model_validate(
            {
                "aberration": {"methods": ["C1"], "levels": ["street"]},
                "cluster": {"min_fevers": 1000},
            }
        ),
    )
    clock.to_local_midday()  # the five fevers of "today" fall in today's local day
    today = clock.now
    # A week of one fever a day (different buildings), then five today.
    for days_ago in range(7, 0, -1):
        await world.send(fever(building=str(days_ago), when=today - timedelta(days=days_ago)))
    assert await world.alerts() == []
    await world.send(
        *(fever(building=str(10 + n), when=today - timedelta(minutes=n + 1)) for n in range(5))
    )
    found = await world.alerts()
    assert [(a.rule, a.unit) for a in found] == [("ears_c1_fevers", COMMUNITY[:9])]
    # baseline mean 1, sd floored at 1: bound = 1 + 3 * 1 = 4 < 5 fevers
    assert found[0].upper_bound == 4.0


async def test_alerts_of_one_unit_and_rule_due_together_go_out_as_one_notification(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    world = World(engine, clock, webhook)
    await world.send(*(fever(building=b) for b in ("3", "3", "3", "7", "7", "7")))
    assert [a.rule for a in await world.alerts()] == ["fever_cluster", "fever_cluster"]
    await world.dispatcher.tick()
    [body] = webhook.bodies("/community")
    assert len(body["alerts"]) == 2
    async with engine.connect() as conn:
        statuses = (
            await conn.execute(
                select(notifications.c.status).where(notifications.c.channel == "webhook")
            )
        ).scalars()
        assert set(statuses) == {"sent"}


async def test_nobody_answers_the_city_is_paged_and_reminded(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Street and district have no rota: the city covers them, so it is paged from the
    street's step (5 min) on, at each later step, then reminded every 10 minutes."""
    routing_oncall = OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": COMMUNITY,
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": "grid worker", "webhook": f"{webhook.url}/community"}],
                },
                {
                    "unit": "6401",
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": "city duty", "webhook": f"{webhook.url}/city"}],
                },
            ]
        }
    )
    world = World(engine, clock, webhook, rota=routing_oncall)
    dispatcher = world.dispatcher
    await world.send(confirmed())
    await dispatcher.tick()
    assert (len(webhook.bodies("/community")), len(webhook.bodies("/city"))) == (1, 0)
    pages = []
    for minutes in (6, 10, 15):  # street (5), district (15), city (30): one step per tick
        clock.advance(minutes=minutes)
        await dispatcher.tick()
        pages.append(len(webhook.bodies("/city")))
    assert pages == [1, 2, 3]
    clock.advance(minutes=11)  # critical reminders every 10 minutes
    await dispatcher.tick()
    assert len(webhook.bodies("/city")) == 4
    assert len(webhook.bodies("/community")) == 1


def test_a_community_without_a_rota_is_covered_by_its_street() -> None:
    """Nobody left unpaged: the nearest ancestor's on-call person stands in."""
    rota = OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": "640106001",
                    "start": "2026-01-05T08:00:00+08:00",
                    "people": [{"name": "street duty"}],
                },
                {
                    "unit": "640106001001",
                    "start": "2026-01-05T08:00:00+08:00",
                    "people": [{"name": "own grid worker"}],
                },
            ]
        }
    )
    at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert rota.person_for("640106001001", at).name == "own grid worker"  # type: ignore[union-attr]
    assert rota.person_for("640106001002", at).name == "street duty"  # type: ignore[union-attr]
    assert rota.person_for("640106002001", at) is None


async def test_a_dispatcher_that_was_down_pages_every_level_it_missed(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """Down for 31 minutes: the street, district and city are each paged once on restart,
    not just the city."""
    levels = {COMMUNITY: "community", "640106001": "street", "640106": "district", "6401": "city"}
    routing_oncall = OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": unit,
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": name, "webhook": f"{webhook.url}/{name}"}],
                }
                for unit, name in levels.items()
            ]
        }
    )
    world = World(engine, clock, webhook, rota=routing_oncall)
    dispatcher = world.dispatcher
    await world.send(confirmed())
    await dispatcher.tick()
    clock.advance(minutes=31)  # past street (5), district (15) and city (30) at once
    await dispatcher.tick()
    pages = {name: len(webhook.bodies(f"/{name}")) for name in levels.values()}
    assert pages == {"community": 1, "street": 1, "district": 1, "city": 1}


async def test_the_province_is_a_level_of_routing_and_escalation(
    engine: AsyncEngine, clock: Clock, webhook: Receiver
) -> None:
    """A rota on the province (64) covers every unit without its own; an escalation step may
    name the province; alerts carry the province label."""
    steps = [{"level": "community", "after_minutes": 0}, {"level": "province", "after_minutes": 10}]
    rota = OnCall.model_validate(
        {
            "rotations": [
                {
                    "unit": "64",
                    "start": "2026-01-01T00:00:00+08:00",
                    "people": [{"name": "province duty", "webhook": f"{webhook.url}/province"}],
                }
            ],
            "escalation": {"critical": {"steps": steps}},
        }
    )
    world = World(engine, clock, webhook, rota=rota)
    await world.send(confirmed())
    await world.dispatcher.tick()
    first = webhook.bodies("/province")
    assert len(first) == 1, "no rota of the community's own: the province's covers it"
    labels = first[0]["alerts"][0]["labels"]
    assert (labels["province"], labels["city"], labels["community"]) == ("64", "6401", COMMUNITY)
    clock.advance(minutes=11)
    await world.dispatcher.tick()
    assert len(webhook.bodies("/province")) == 2, "the province step pages the province"
